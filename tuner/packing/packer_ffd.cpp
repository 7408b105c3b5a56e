// ffd: first-fit-decreasing into fixed-length bins, as NeMo packs sequences.
//
// Each step holds one bin of the context length per micro-batch. The documents carried over go
// first (oldest first), then the newly drawn ones longest first; each goes into the first bin
// (lowest index) with room, else it is carried over. It minimises padding, not imbalance: it is
// here as the token-efficiency reference a peer framework uses.
#include "base/error.hpp"
#include "tuner/packing/packing_common.hpp"

#include <algorithm>

namespace wlb::tuner {
namespace {

class ffd_packer final : public packer {
public:
    explicit ffd_packer(const packing_config& c) : packer(c) {}

    std::optional<runtime::global_batch> pack(std::int64_t step,
                                              const document_pull& pull) override {
        if (!m_intake.active)
            m_intake = {true, tokens_of(m_carried), {}};
        if (!m_ended)
            m_ended = !draw_until(pull, step, m_config.context_tokens, m_intake.have_tokens,
                                  m_config.step_tokens(), [&](const runtime::document& d) {
                                      m_intake.fresh.push_back({d, 0.0});
                                      return d.tokens;
                                  });
        auto fresh = std::move(m_intake.fresh);
        m_intake = {};
        if (m_ended && fresh.empty() && m_carried.empty())
            return std::nullopt;
        step_builder b(m_config.step_micro_batches(), m_config.context_tokens,
                       m_config.step_tokens());
        std::vector<weighed_doc> left;
        auto first_fit = [&](const std::vector<weighed_doc>& docs) {
            for (const auto& d : docs) {
                int i = 0;
                while (i < b.size() && !b.fits(i, d.doc.tokens))
                    ++i;
                if (i < b.size())
                    b.place(i, d);
                else
                    left.push_back(d);
            }
        };
        sort_carried(m_carried);
        first_fit(m_carried);
        sort_longest_first(fresh);
        first_fit(fresh);
        m_carried = std::move(left);
        return b.finish(step, m_config.replicas);
    }

    [[nodiscard]] std::vector<runtime::document> waiting() const override {
        auto out = documents_of(m_carried);
        for (const auto& d : m_intake.fresh)
            out.push_back(d.doc);
        return out;
    }

    [[nodiscard]] packer_state save_state() const override {
        WLB_EXPECTS(!m_intake.active, "save_state() while a step's intake is in progress");
        packer_state s;
        s.carried = documents_of(m_carried);
        s.ended = m_ended;
        return s;
    }
    void load_state(const packer_state& s) override {
        check_packer_state(s, m_config);
        m_carried = weigh(s.carried, nullptr);
        m_ended = s.ended;
        m_intake = {};
    }
    [[nodiscard]] std::int64_t min_draw_tokens() const override {
        // draw_until counts every drawn token toward the budget, from the carried documents on.
        const auto have = m_intake.active ? m_intake.have_tokens : tokens_of(m_carried);
        return m_ended ? 0 : std::max<std::int64_t>(0, m_config.step_tokens() - have);
    }
    [[nodiscard]] std::unique_ptr<packer> clone() const override {
        return std::make_unique<ffd_packer>(*this);
    }

private:
    std::vector<weighed_doc> m_carried;
    intake_state m_intake;
    bool m_ended = false;
};

} // namespace

std::unique_ptr<packer> make_ffd_packer(const packing_config& config) {
    return std::make_unique<ffd_packer>(config);
}

} // namespace wlb::tuner
