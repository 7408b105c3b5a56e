// Single-GPU emulation of a CP group or of a pipeline's micro-batches (issue 9). Lent GPU
// machines have one device; this runs the layer compute of every rank of a CP group one rank
// after another on it, each with its real shard (its chunks under the document mask and its
// tokens), and MODELS only the communication (a caller-given function, e.g. the cost model's CP
// all-gather). It measures real per-rank kernel times for real shardings and packings:
//
//   layer_seconds = max over ranks (measured compute) + modelled communication
//
// which is the time a CP group spends on one layer when the slowest rank holds up the next
// layer's all-gather (tuner/sharding/shard_metrics.hpp's definition, with measured instead of
// predicted compute). For the pipeline view, emulate_micro_batches times every micro-batch of a
// packing as one rank with cp = 1.
//
// Per rank and layer, forward and backward, bf16 with fp32 accumulation, inputs from
// kernels::cuda::fill_random: attention over the rank's chunks (kernels::cuda attention, every
// query head with its own K and V: GQA shares K/V between heads, the FLOPs are the same), and,
// with `linear`, the layer's GEMMs through cuBLAS (QKV, output, MLP; backward: data and weight
// gradients) and element-wise kernels (two RMSNorms, rotary on Q and K, SwiGLU) of the rank's
// tokens. Each phase is timed with CUDA events around `repeats` runs after `warmup` runs; the
// median is reported. Host header; defined in runtime/train/cuda/ (wlb::cuda), and in builds
// without CUDA by runtime/train/no_cuda/, which throws wlb::runtime_failure.
#pragma once

#include "runtime/parallel/batch.hpp"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace wlb::runtime {

/// One decoder layer's shapes on one TP rank.
struct emulated_layer {
    int hidden = 4096;  ///< model width (activation rows are hidden wide)
    int heads = 4;      ///< query heads on this TP rank
    int kv_heads = 1;   ///< K/V heads on this TP rank (the QKV GEMM's width)
    int head_dim = 128; ///< 64 or 128 take the tensor-core attention
    int ffn = 1376;     ///< MLP inner width on this TP rank
    bool gated_mlp = true;
    double rotary_base = 10000.0;
};

struct emulation_options {
    int warmup = 1;
    int repeats = 3;
    bool linear = true; ///< also time GEMMs and element-wise work (else attention only)
    int device = 0;
    /// Modelled communication of the group for one layer, forward + backward, in seconds;
    /// empty: none.
    std::function<double(const sharded_micro_batch&)> comm_seconds;
};

struct emulated_rank {
    std::int64_t tokens = 0;       ///< query tokens of the rank
    std::int64_t causal_pairs = 0; ///< exact (query, key) pairs of its chunks, per head
    int chunks = 0;
    double attention_fwd_seconds = 0.0; ///< measured, median
    double attention_bwd_seconds = 0.0;
    double linear_fwd_seconds = 0.0; ///< GEMMs + element-wise, measured (0 without `linear`)
    double linear_bwd_seconds = 0.0;
    double attention_fwd_flops = 0.0; ///< 4 * pairs * heads * head_dim

    [[nodiscard]] double compute_seconds() const noexcept {
        return attention_fwd_seconds + attention_bwd_seconds + linear_fwd_seconds +
               linear_bwd_seconds;
    }
};

struct emulation_result {
    std::string device_name;
    std::string attention_variant;    ///< "mma" or "simt"
    std::vector<emulated_rank> ranks; ///< index = CP rank (or micro-batch)
    double comm_seconds = 0.0;        ///< modelled
    [[nodiscard]] double max_compute_seconds() const noexcept;
    [[nodiscard]] double mean_compute_seconds() const noexcept;
    [[nodiscard]] double layer_seconds() const noexcept {
        return max_compute_seconds() + comm_seconds;
    }
};

/// Runs every CP rank of `batch` one after another on `options.device`. Throws
/// wlb::runtime_failure without a CUDA device (or in a build without CUDA) and
/// wlb::internal_error on a malformed shard.
[[nodiscard]] emulation_result emulate_cp_group(const sharded_micro_batch& batch,
                                                const emulated_layer& layer,
                                                const emulation_options& options);

/// The pipeline view: every micro-batch as one rank holding its documents whole (cp = 1).
[[nodiscard]] emulation_result emulate_micro_batches(const std::vector<micro_batch>& micro_batches,
                                                     const emulated_layer& layer,
                                                     const emulation_options& options);

} // namespace wlb::runtime
