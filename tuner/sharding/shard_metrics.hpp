// What a CP sharding costs, per rank and over the CP group: tokens, exact causal pairs under the
// document mask, predicted seconds from the cost model, and the shapes a varlen attention
// kernel would get. All predictions are per transformer layer, forward plus backward.
//
// "Predicted worse" (the one definition every policy comparison uses): a sharding A is worse
// than B on a micro-batch when A.predicted_seconds > B.predicted_seconds, where
//   predicted_seconds = max over CP ranks of (attention_seconds + linear_seconds),
// the time the CP group takes for one layer, since the slowest rank holds up the CP all-gather
// of the next layer. Attention is the quadratic term the sharding balances; linear work (GEMMs,
// element-wise, TP collectives) follows the rank's token count, so a layout that evens
// attention by unevening tokens pays for it here. The CP all-gather of K and V moves every
// token of the micro-batch whatever the layout, so it is the same for every policy and left out.
#pragma once

#include "runtime/parallel/batch.hpp"

#include <cstdint>
#include <vector>

namespace wlb::tuner {

class cost_model;

struct rank_load {
    std::int64_t tokens = 0;       ///< query tokens this rank holds
    std::int64_t causal_pairs = 0; ///< exact (query, key) pairs under the document mask
    /// Predicted attention seconds, forward + backward, per layer: every chunk's query padded
    /// to the kernel tile, at the achieved rate for that padded length (cost_model).
    double attention_seconds = 0.0;
    /// Predicted linear seconds, forward + backward, per layer: GEMMs, element-wise and TP
    /// collectives of `tokens` tokens.
    double linear_seconds = 0.0;
    /// Kernel shapes: cu_seqlens_q[k+1] - cu_seqlens_q[k] is chunk k's query length and
    /// cu_seqlens_k[k+1] - cu_seqlens_k[k] its key length (earlier tokens + its own), in the
    /// rank's chunk order; both start at 0 and have chunks + 1 entries.
    std::vector<std::int64_t> cu_seqlens_q;
    std::vector<std::int64_t> cu_seqlens_k;

    [[nodiscard]] double predicted_seconds() const noexcept {
        return attention_seconds + linear_seconds;
    }
};

struct shard_metrics {
    std::vector<rank_load> ranks; ///< index = CP rank
    /// max over ranks of rank_load::predicted_seconds(): the objective ("worse" = larger).
    double predicted_seconds = 0.0;
    /// CP imbalance: max over ranks / mean of predicted attention seconds (1 when no work).
    double attention_imbalance = 1.0;
    /// Token balance: max over ranks / mean of tokens (1 when no tokens).
    double token_imbalance = 1.0;
    double max_attention_seconds = 0.0;
    std::int64_t min_tokens = 0, max_tokens = 0;
    std::int64_t min_pairs = 0, max_pairs = 0;
};

/// Measures a sharding with `cost` (its layout's tp divides FLOPs; cp is taken from `s`).
[[nodiscard]] shard_metrics measure_sharding(const runtime::sharded_micro_batch& s,
                                             const cost_model& cost);

/// Predicted attention seconds, forward + backward per layer, of one chunk of `q_tokens` queries
/// after `q_offset` earlier tokens of its document.
[[nodiscard]] double chunk_attention_seconds(const cost_model& cost, std::int64_t q_tokens,
                                             std::int64_t q_offset);
/// Predicted linear seconds, forward + backward per layer, of a rank holding `tokens` tokens.
[[nodiscard]] double rank_linear_seconds(const cost_model& cost, std::int64_t tokens);

} // namespace wlb::tuner
