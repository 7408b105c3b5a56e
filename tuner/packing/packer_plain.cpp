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
#include "tuner/packing/fixed_sequences.hpp"

namespace wlb::tuner {
namespace {

class plain_packer final : public fixed_sequence_packer {
public:
    explicit plain_packer(const packing_config& c) : fixed_sequence_packer(c) {}

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
    void place(runtime::document d, std::int64_t step) override {
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
};

} // namespace

std::unique_ptr<packer> make_plain_packer(const packing_config& config) {
    return std::make_unique<plain_packer>(config);
}

} // namespace wlb::tuner
