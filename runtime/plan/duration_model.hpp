// Where the step plan gets its durations from (design.md section 2): the cost model (an
// adapter in tuner/ implements this interface), measured durations (the what-if attribution),
// or a fake with fixed durations (the closed-form tests). runtime/ never includes tuner/.
//
// Every compute duration is per transformer layer and per rank: a TP rank's share of the work
// of the tokens (or chunks) its CP rank holds. Collective and p2p durations are for one
// operation on the given global ranks (the model decides what is inside a node).
#pragma once

#include "runtime/parallel/batch.hpp"

#include <cstdint>
#include <span>

namespace wlb::runtime {

enum class collective_kind : std::uint8_t { all_reduce, all_gather, reduce_scatter };

/// The byte counts the step plan needs to size its communication, per rank.
struct plan_shape {
    int layers = 0; ///< transformer layers of the whole model
    /// Bytes per token of the activation a pipeline stage sends to the next (and of its
    /// gradient going back), per TP rank (sequence parallel: each TP rank sends its slice).
    double pp_bytes_per_token = 0.0;
    /// Bytes per token of the full buffer of one TP collective (sequence-parallel all-gather
    /// or reduce-scatter of a hidden-sized activation); a layer runs two of each per pass.
    double tp_bytes_per_token = 0.0;
    /// Bytes per token of the keys and values a CP all-gather collects, per TP rank.
    double kv_bytes_per_token = 0.0;
    /// Parameters per transformer layer per TP rank; and of the embedding (first chunk) and
    /// output layer (last chunk) per TP rank.
    double layer_params = 0.0;
    double embedding_params = 0.0;
    double output_params = 0.0;
    double grad_bytes_per_param = 2.0; ///< bf16 gradients reduced across DP x CP
};

class duration_model {
public:
    virtual ~duration_model() = default;
    [[nodiscard]] virtual plan_shape shape() const = 0;

    // Per layer, per rank, for what one CP rank holds of one micro-batch.
    [[nodiscard]] virtual double linear_fwd_seconds(std::int64_t tokens) const = 0;
    [[nodiscard]] virtual double linear_bwd_seconds(std::int64_t tokens) const = 0;
    [[nodiscard]] virtual double attention_fwd_seconds(const cp_shard& shard) const = 0;
    [[nodiscard]] virtual double attention_bwd_seconds(const cp_shard& shard) const = 0;

    /// Output layer and loss of `tokens` tokens on the last model chunk (forward / backward).
    [[nodiscard]] virtual double output_layer_fwd_seconds(std::int64_t tokens) const = 0;
    [[nodiscard]] virtual double output_layer_bwd_seconds(std::int64_t tokens) const = 0;

    /// One collective over `members` (global ranks, at least 2); `bytes` is the full
    /// (gathered / reduced) buffer per rank.
    [[nodiscard]] virtual double collective_seconds(collective_kind kind, double bytes,
                                                    std::span<const int> members) const = 0;
    /// One point-to-point transfer from `src` to `dst` (global ranks).
    [[nodiscard]] virtual double p2p_seconds(double bytes, int src, int dst) const = 0;
    /// The optimizer step over `params` parameters held by one rank.
    [[nodiscard]] virtual double optimizer_seconds(double params) const = 0;
};

} // namespace wlb::runtime
