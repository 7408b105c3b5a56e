// plain-whole: fixed-length packing that keeps every document whole, the "original packing" of
// WLB-LLM's Table 2 (imbalance 1.44 at 7B/128K), beside plain's Megatron cut at the boundary.
//
// Documents in dataloader order fill sequences of at most the context length, one sequence per
// micro-batch, micro-batch 0 of replica 0 first. A document that does not fit the rest of the
// current sequence closes it (the rest is padding) and opens the next one; one that does not fit
// the step's last sequence waits, whole, for the next step, where it opens the first sequence.
// As in plain, a document moved to the next step counts as drawn there (the dataloader hands the
// step what it trains): the policy's delay is zero by construction. A long document therefore
// keeps its whole quadratic attention in one micro-batch, which is where the original packing's
// imbalance comes from.
#include "base/error.hpp"
#include "tuner/packing/packing_common.hpp"

namespace wlb::tuner {
namespace {

class plain_whole_packer final : public packer {
public:
    explicit plain_whole_packer(const packing_config& c) : packer(c) {}

    std::optional<runtime::global_batch> pack(std::int64_t step,
                                              const document_pull& pull) override {
        if (!m_filling.active) {
            m_filling = {true,
                         std::vector<runtime::micro_batch>(
                             static_cast<std::size_t>(m_config.step_micro_batches())),
                         0, 0, m_config.context_tokens};
            if (m_pending) {
                auto d = *m_pending;
                m_pending.reset();
                d.drawn_step = step;
                place(d, step); // an empty step holds any document
            }
        }
        while (!m_ended && !m_pending && m_filling.placed < m_config.step_tokens()) {
            auto d = pull(step); // may throw: the step so far stays in m_filling
            if (!d) {
                m_ended = true;
                break;
            }
            check_document(*d, m_config.context_tokens);
            place(*d, step);
        }
        auto mbs = std::move(m_filling.mbs);
        const auto placed = m_filling.placed;
        m_filling = {};
        if (placed == 0)
            return std::nullopt;
        runtime::global_batch b;
        b.step = step;
        b.replicas.resize(static_cast<std::size_t>(m_config.replicas));
        const auto per = static_cast<std::size_t>(m_config.micro_batches);
        for (std::size_t i = 0; i < mbs.size(); ++i)
            b.replicas[i / per].micro_batches.push_back(std::move(mbs[i]));
        return b;
    }

    [[nodiscard]] std::vector<runtime::document> waiting() const override {
        std::vector<runtime::document> out;
        for (const auto& mb : m_filling.mbs)
            out.insert(out.end(), mb.docs.begin(), mb.docs.end());
        if (m_pending)
            out.push_back(*m_pending);
        return out;
    }

    [[nodiscard]] packer_state save_state() const override {
        WLB_EXPECTS(!m_filling.active, "save_state() while a step's intake is in progress");
        packer_state s;
        s.pending = m_pending;
        s.ended = m_ended;
        return s;
    }
    void load_state(const packer_state& s) override {
        check_packer_state(s, m_config);
        m_pending = s.pending;
        m_ended = s.ended;
        m_filling = {};
    }
    [[nodiscard]] std::int64_t min_draw_tokens() const override {
        // A document that does not fit ends the draw and leaves padding: the draw stops no
        // earlier than the first document drawn, so nothing more can be promised.
        if (m_ended || m_pending)
            return 0;
        return m_filling.placed < m_config.step_tokens() ? 1 : 0;
    }
    [[nodiscard]] std::unique_ptr<packer> clone() const override {
        return std::make_unique<plain_whole_packer>(*this);
    }

private:
    /// Places `d` whole into the step being filled; one that does not fit the step's last
    /// sequence waits, whole, as the pending document of the next step.
    void place(runtime::document d, std::int64_t step) {
        auto& f = m_filling;
        const int count = static_cast<int>(f.mbs.size());
        while (d.tokens > f.space) {
            if (f.current + 1 >= count) {
                d.drawn_step = step + 1; // opens the next step's first sequence
                m_pending = d;
                return;
            }
            ++f.current;
            f.space = m_config.context_tokens;
        }
        f.mbs[static_cast<std::size_t>(f.current)].docs.push_back(d);
        f.space -= d.tokens;
        f.placed += d.tokens;
    }

    /// The step being filled (packer.hpp, "Resumable intake").
    struct filling {
        bool active = false;
        std::vector<runtime::micro_batch> mbs;
        std::int64_t placed = 0;
        int current = 0;
        std::int64_t space = 0;
    };

    std::optional<runtime::document> m_pending; // a document that did not fit the last step
    filling m_filling;
    bool m_ended = false;
};

} // namespace

std::unique_ptr<packer> make_plain_whole_packer(const packing_config& config) {
    return std::make_unique<plain_whole_packer>(config);
}

} // namespace wlb::tuner
