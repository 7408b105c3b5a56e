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
#include "tuner/packing/fixed_sequences.hpp"

namespace wlb::tuner {
namespace {

class plain_whole_packer final : public fixed_sequence_packer {
public:
    explicit plain_whole_packer(const packing_config& c) : fixed_sequence_packer(c) {}

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
    void place(runtime::document d, std::int64_t step) override {
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
};

} // namespace

std::unique_ptr<packer> make_plain_whole_packer(const packing_config& config) {
    return std::make_unique<plain_whole_packer>(config);
}

} // namespace wlb::tuner
