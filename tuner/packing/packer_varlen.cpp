// varlen: WLB-LLM's variable-length packing (Algorithm 1) without outlier queues.
//
// Each step: the documents carried over from the last step go first (oldest first), then the
// newly drawn ones longest first; each is placed on the micro-batch of least predicted forward
// work (cost_model::document_fwd_seconds) if the micro-batch stays within S_max tokens and the
// step within its token budget, else on the micro-batch of fewest tokens if that fits, else it is
// carried over to the next step. Micro-batches therefore differ in tokens (up to S_max) so that
// they can match in work.
#include "base/error.hpp"
#include "tuner/cost/cost_model.hpp"
#include "tuner/packing/packing_common.hpp"

#include <algorithm>

namespace wlb::tuner {
namespace {

class varlen_packer final : public packer {
public:
    varlen_packer(const packing_config& c, const cost_model& costs) : packer(c), m_costs(costs) {}

    std::optional<runtime::global_batch> pack(std::int64_t step,
                                              const document_pull& pull) override {
        if (!m_intake.active)
            m_intake = {true, tokens_of(m_carried), {}};
        if (!m_ended)
            m_ended = !draw_until(
                pull, step, m_config.context_tokens, m_intake.have_tokens, m_config.step_tokens(),
                [&](const runtime::document& d) {
                    m_intake.fresh.push_back({d, m_costs.document_fwd_seconds(d.tokens)});
                    return d.tokens;
                });
        auto fresh = std::move(m_intake.fresh);
        m_intake = {};
        if (m_ended && fresh.empty() && m_carried.empty())
            return std::nullopt;
        step_builder b(m_config.step_micro_batches(), m_config.micro_batch_limit(),
                       m_config.step_tokens());
        std::vector<weighed_doc> left;
        sort_carried(m_carried);
        place_least_work(b, m_carried, left);
        sort_longest_first(fresh);
        place_least_work(b, fresh, left);
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
        m_carried = weigh(s.carried, &m_costs);
        m_ended = s.ended;
        m_intake = {};
    }
    [[nodiscard]] std::int64_t min_draw_tokens() const override {
        // draw_until counts every drawn token toward the budget, from the carried documents on.
        const auto have = m_intake.active ? m_intake.have_tokens : tokens_of(m_carried);
        return m_ended ? 0 : std::max<std::int64_t>(0, m_config.step_tokens() - have);
    }
    [[nodiscard]] std::unique_ptr<packer> clone() const override {
        return std::make_unique<varlen_packer>(*this);
    }

private:
    const cost_model& m_costs;
    std::vector<weighed_doc> m_carried;
    intake_state m_intake;
    bool m_ended = false;
};

} // namespace

std::unique_ptr<packer> make_varlen_packer(const packing_config& config, const cost_model& costs) {
    return std::make_unique<varlen_packer>(config, costs);
}

} // namespace wlb::tuner
