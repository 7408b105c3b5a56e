// The candidates `wlbtune simulate --compare` runs on the same documents: Megatron's plain
// packing with per-sequence CP sharding as the baseline (WLB-LLM's Plain-4D), each of WLB-LLM's
// two techniques alone, both together, and the alternatives around them. The [tuner] issue adds
// its searched configuration to this list.
#pragma once

#include "tuner/search/evaluate.hpp"

#include <vector>

namespace wlb::tuner {

struct candidate {
    packing_config packing;
    sharding_spec sharding;
    std::string role;    ///< "baseline", "packing only", "sharding only", "both", "", "chosen"
    bool chosen = false; ///< the configuration the command was asked for (its role says so too)
};

/// In order: plain + per-seq (baseline: Megatron's cut at the sequence boundary), plain-whole +
/// per-seq (the same fixed-length packing with documents kept whole: the paper's original
/// packing), plain + adaptive (sharding only), wlb + per-seq
/// (packing only), wlb + adaptive (both), wlb + per-doc, wlb + hybrid (auto threshold), and
/// fixed-greedy (--window) + adaptive. The wlb candidates take the knobs' queues, thresholds
/// and S_max; all take the knobs' context and micro-batches. The knobs' own policy with
/// `chosen` comes last, role "chosen", unless it is already in the list (then that entry's role
/// gains ", chosen"); either way exactly one entry has candidate::chosen set.
std::vector<candidate> comparison_candidates(const packing_knobs& knobs,
                                             const sharding_spec& chosen, const runtime::layout& l);

} // namespace wlb::tuner
