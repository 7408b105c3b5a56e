// Per-sequence CP sharding (Llama 3, Megatron-LM's default "zigzag"): the packed sequence (the
// micro-batch's documents end to end, in order) is cut into 2*cp contiguous chunks and CP rank i
// holds chunks i and 2cp-1-i, so each rank gets one early and one late piece of the causal
// triangle. This balances one long document; a pack of many documents under a document mask is
// not balanced (WLB-LLM section 5.1).
//
// Totals not divisible by 2*cp: no padding. Rank i holds t_i = floor(T/cp) + (i < T mod cp)
// tokens, its front chunk ceil(t_i/2) and its back chunk floor(t_i/2) of them, so chunk lengths
// differ by at most one token and rank token counts by at most one (none when cp divides T).
// Megatron instead pads the sequence to a multiple of 2*cp; the packers here emit variable
// totals, and padding would add work that per-doc does not have, so the comparison stays fair.
#pragma once

#include "runtime/parallel/batch.hpp"
#include "tuner/sharding/sharding.hpp"

namespace wlb::tuner {

/// Per-sequence sharding of `mb` over `cp` >= 1 ranks. A document cut by a chunk boundary gives
/// one chunk per piece, with q_offset its position inside the document.
[[nodiscard]] runtime::sharded_micro_batch shard_per_seq(const runtime::micro_batch& mb, int cp);

class per_seq_sharder final : public sharder {
public:
    explicit per_seq_sharder(int cp) : m_cp(cp) {}
    [[nodiscard]] sharding_spec spec() const override { return {sharding_policy::per_seq, {}}; }
    [[nodiscard]] shard_decision shard(const runtime::micro_batch& mb) const override {
        return {shard_per_seq(mb, m_cp), sharding_policy::per_seq, {}, false};
    }

private:
    int m_cp;
};

} // namespace wlb::tuner
