// Memory per rank of a 4D-parallel layout (the tuner's memory constraint and the cap on S_max):
// static memory (weights, gradients, optimizer state) plus the activations the pipeline keeps
// in flight. An estimate from the model shape, stated term by term so it can be checked and
// corrected; not measured.
//
// Static, per rank of pp stage p (parameters of its layers / tp, plus the input embedding on the
// first stage and the output layer on the last, each vocab x hidden / tp):
//   bf16 weights 2 bytes + fp32 gradients 4 bytes per parameter, plus Adam's fp32 master weights
//   and two moments (12 bytes per parameter) sharded over the DP x CP ranks that hold the same
//   weights (Megatron's distributed optimizer).
// Activations kept for the backward, per token of a layer, with tensor and sequence parallelism
// (every stored tensor divided by tp) and FlashAttention (no score matrix), bf16, Llama layer
// (RMSNorm, grouped-query attention, SwiGLU MLP), no recomputation:
//   norm inputs 2 x 2h, norm outputs (QKV and MLP inputs) 2 x 2h, Q K V 2(h + 2 kv), attention
//   output 2h, gate and up outputs 2 x 2f, SwiGLU output 2f
//   = (10 h + 4 kv + 6 f) / tp bytes (h hidden, kv = kv_heads x head_dim, f the MLP size);
//   about 30 h / tp for Llama-2-7B, close to Korthikanti et al.'s 34 h / tp with dropout masks.
//   The last stage also holds fp32 logits of the micro-batch in the output layer: 4 vocab / tp
//   bytes per token.
// In flight (1F1B): stage p holds the activations of at most min(M, P - p) micro-batches (its
// warm-up forwards plus one); interleaved with V chunks: the model chunks of its warm-up
// 2(P - p - 1) + (V - 1)N forwards plus one, capped at M V. The worst case for a packing limit
// S_max (tokens per micro-batch) and a step budget B: those micro-batches hold at most
// min(k S_max, B) tokens together, divided over the CP ranks (times the sharding's token
// imbalance bound: 1 for per-seq/per-doc/adaptive, hybrid's max_token_imbalance).
// Usable memory: the device's memory minus a reserve for the CUDA context, NCCL buffers, kernel
// workspaces and allocator fragmentation (reserve_fraction, 10% by default).
#pragma once

#include "runtime/model/model_spec.hpp"
#include "runtime/parallel/layout.hpp"
#include "runtime/parallel/pipeline_schedule.hpp"
#include "tuner/cost/hardware.hpp"

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <vector>

namespace wlb::tuner {

struct memory_options {
    double reserve_fraction = 0.10; ///< of the device memory, for context, NCCL, fragmentation
    /// Overrides the hardware's memory per rank (GB = 1e9 bytes); 0: hardware memory_gbytes.
    double memory_gbytes = 0.0;
};

/// The peak of one pp stage.
struct stage_memory {
    int stage = 0;
    double static_bytes = 0.0;
    double activation_bytes = 0.0;
    int in_flight = 0; ///< micro-batches (model chunks, interleaved) whose activations it holds
    [[nodiscard]] double total_bytes() const noexcept { return static_bytes + activation_bytes; }
};

struct memory_estimate {
    std::vector<stage_memory> stages;
    double peak_bytes = 0.0; ///< max over stages
    int peak_stage = 0;
    double usable_bytes = 0.0; ///< device memory minus the reserve
    [[nodiscard]] bool fits() const noexcept { return peak_bytes <= usable_bytes; }
};

class memory_model {
public:
    /// `partition`: layers per model chunk (pp x vpp entries); empty: "even".
    memory_model(runtime::model_spec model, runtime::layout layout, const hardware_config& hardware,
                 memory_options options = {}, runtime::stage_partition partition = {});

    /// Activation bytes one token of one layer keeps on a rank: (10h + 4kv + 6f) / tp.
    [[nodiscard]] double activation_bytes_per_token_layer() const noexcept;
    /// Micro-batches (or model chunks) whose activations stage p holds at its peak.
    [[nodiscard]] int in_flight(int stage, int micro_batches) const noexcept;
    /// Weights, gradients and optimizer state of stage p, per rank.
    [[nodiscard]] double static_bytes(int stage) const noexcept;

    /// Peak memory per rank for micro-batches of at most `limit_tokens` each, `micro_batches`
    /// per DP replica, a step budget of `replica_budget_tokens` per replica, and a CP token
    /// imbalance bound `token_imbalance` (>= 1).
    [[nodiscard]] memory_estimate estimate(std::int64_t limit_tokens, int micro_batches,
                                           std::int64_t replica_budget_tokens,
                                           double token_imbalance = 1.0) const;

    /// The largest micro-batch limit (tokens, a multiple of `granularity`) that fits, or 0 when
    /// not even `granularity` tokens fit. At most `replica_budget_tokens` (a micro-batch never
    /// holds more than the step).
    [[nodiscard]] std::int64_t max_limit_tokens(int micro_batches,
                                                std::int64_t replica_budget_tokens,
                                                double token_imbalance = 1.0,
                                                std::int64_t granularity = 1024) const;

    [[nodiscard]] double usable_bytes() const noexcept { return m_usable_bytes; }
    [[nodiscard]] const runtime::layout& layout() const noexcept { return m_layout; }

private:
    runtime::model_spec m_model;
    runtime::layout m_layout;
    runtime::stage_partition m_partition;
    double m_usable_bytes = 0.0;
};

nlohmann::json to_json(const memory_estimate& m);

} // namespace wlb::tuner
