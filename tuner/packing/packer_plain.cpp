// plain: WLB-LLM's Plain-4D baseline, Megatron-style fixed-length packing.
//
// Documents in dataloader order fill sequences of exactly the context length, one sequence per
// micro-batch, micro-batch 0 of replica 0 first. A document that crosses a sequence boundary is
// cut there, as Megatron's GPTDataset does: its first part ends this sequence and the rest (same
// id, the remaining tokens) opens the next one, also across steps. Under the document mask the
// two parts attend only inside their own sequence, so each part is costed as a document of its
// own length. A part continued into the next step counts as drawn in that step: this policy
// trains every token in the step whose budget it falls in, so its delay is zero by construction.
// Every sequence is full except possibly the ones after the stream's end.
#include "base/error.hpp"
#include "tuner/packing/packing_common.hpp"

namespace wlb::tuner {
namespace {

class plain_packer final : public packer {
public:
    explicit plain_packer(const packing_config& c) : packer(c) {}

    std::optional<runtime::global_batch> pack(std::int64_t step,
                                              const document_pull& pull) override {
        const auto context = m_config.context_tokens;
        if (!m_filling.active) {
            m_filling = {true,
                         std::vector<runtime::micro_batch>(
                             static_cast<std::size_t>(m_config.step_micro_batches())),
                         0, 0, context};
            if (m_pending) {
                auto d = *m_pending;
                m_pending.reset();
                d.drawn_step = step;
                place(d, step);
            }
        }
        while (!m_ended && !m_pending && m_filling.placed < m_config.step_tokens()) {
            auto d = pull(step); // may throw: the step so far stays in m_filling
            if (!d) {
                m_ended = true;
                break;
            }
            check_document(*d, context);
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
        // The pending piece opens the step; drawing fills the rest of its sequences.
        if (m_ended || (m_filling.active && m_pending))
            return 0;
        if (m_filling.active)
            return m_config.step_tokens() - m_filling.placed;
        return m_config.step_tokens() - (m_pending ? m_pending->tokens : 0);
    }
    [[nodiscard]] std::unique_ptr<packer> clone() const override {
        return std::make_unique<plain_packer>(*this);
    }

private:
    /// Places `d` into the step being filled, cutting it at sequence boundaries; whatever is left
    /// past the step's last sequence waits as the pending piece.
    void place(runtime::document d, std::int64_t step) {
        auto& f = m_filling;
        const int count = static_cast<int>(f.mbs.size());
        while (d.tokens > 0 && f.current < count) {
            if (f.space == 0) {
                ++f.current;
                f.space = m_config.context_tokens;
                continue;
            }
            runtime::document part = d;
            part.tokens = std::min(d.tokens, f.space);
            f.mbs[static_cast<std::size_t>(f.current)].docs.push_back(part);
            f.space -= part.tokens;
            f.placed += part.tokens;
            d.tokens -= part.tokens;
        }
        if (d.tokens > 0) {
            d.drawn_step = step + 1; // continues in the next step's first sequence
            m_pending = d;
        }
    }

    /// The step being filled (packer.hpp, "Resumable intake").
    struct filling {
        bool active = false;
        std::vector<runtime::micro_batch> mbs;
        std::int64_t placed = 0;
        int current = 0;
        std::int64_t space = 0;
    };

    std::optional<runtime::document> m_pending; // the rest of a document cut at the step's end
    filling m_filling;
    bool m_ended = false;
};

} // namespace

std::unique_ptr<packer> make_plain_packer(const packing_config& config) {
    return std::make_unique<plain_packer>(config);
}

} // namespace wlb::tuner
