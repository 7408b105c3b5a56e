// Cost model: turns (model, hardware, layout) and work into seconds (design.md section 4).
//
// Structure (WLB-LLM section 3): a document of length d costs W_a(d) + W_l(d) per layer, where
//   W_a is attention, quadratic: exact causal (query, key) pairs under the document mask, and
//   W_l is linear: GEMMs, element-wise work, and the TP/CP collectives.
// Everything is per layer and per rank: GEMM and attention FLOPs are divided by tp (tensor
// parallel heads and columns, with sequence parallelism); CP divides tokens and pairs by how
// the sharder cut them.
//
// FLOP convention (the one place that defines it):
//   attention forward  = 4 * pairs * hidden            (QK^T and PV: 2 FLOPs per MAC, per head
//                                                       2*head_dim each, summed over heads;
//                                                       = 4*s^2*heads*head_dim/2 for a full
//                                                       causal sequence of s tokens)
//   attention backward = 2.5 x forward                 (FlashAttention's benchmark convention:
//                                                       five matmuls in backward, two forward)
//   GEMM forward       = 2 * tokens * layer weights    (QKV, output, MLP)
//   GEMM backward      = 2 x forward                   (data and weight gradients)
// Attention time pads each chunk's query length up to the kernel tile (128) and divides by the
// achieved rate for that padded length (hardware_config::attention_fwd_tflops). Calibrated
// hardware adds a per-token term (hardware_config::attention_fwd_token_pairs: per padded query
// token, that many pairs' FLOPs at the table's long-chunk rate) and its own backward table; the
// measured fit that chose this form is in docs/benchmarks.md ("Calibration").
#pragma once

#include "runtime/model/model_spec.hpp"
#include "runtime/parallel/batch.hpp"
#include "runtime/parallel/layout.hpp"
#include "tuner/cost/hardware.hpp"

#include <cstdint>
#include <nlohmann/json_fwd.hpp>

namespace wlb::tuner {

struct cost_options {
    double attention_bwd_flop_ratio = 2.5; ///< backward / forward attention FLOPs
    double gemm_bwd_flop_ratio = 2.0;      ///< backward / forward GEMM FLOPs
    /// Element-wise bytes moved per token per layer, in units of hidden * bytes_per_element
    /// (norms, residual adds, rotary, SwiGLU, dropout-free): about 24 reads and writes of a
    /// hidden-sized activation per layer forward in Megatron's fused kernels.
    double elementwise_hidden_passes = 24.0;
    int bytes_per_element = 2; ///< bf16 activations
    /// The output layer (LM head and loss) split over the TP ranks by vocabulary, as Megatron's
    /// is; false: every TP rank computes all of it (the CPU executor, runtime/train).
    bool split_output_layer = true;
};

enum class collective { all_reduce, all_gather, reduce_scatter };

class cost_model {
public:
    cost_model(runtime::model_spec model, hardware_config hardware, runtime::layout layout,
               cost_options options = {});

    [[nodiscard]] const runtime::model_spec& model() const noexcept { return m_model; }
    [[nodiscard]] const hardware_config& hardware() const noexcept { return m_hardware; }
    [[nodiscard]] const runtime::layout& layout() const noexcept { return m_layout; }
    [[nodiscard]] const cost_options& options() const noexcept { return m_options; }

    // ---- attention (quadratic), per layer, per rank (divided by tp) ----
    /// FLOPs of one chunk's forward attention, unpadded: 4 * pairs * hidden / tp.
    [[nodiscard]] double attention_fwd_flops(std::int64_t q_tokens, std::int64_t q_offset) const;
    /// Seconds of one chunk's forward attention: query length padded to the tile, pairs of the
    /// padded chunk, at the achieved rate for the padded length.
    [[nodiscard]] double attention_fwd_seconds(std::int64_t q_tokens, std::int64_t q_offset) const;
    [[nodiscard]] double attention_bwd_seconds(std::int64_t q_tokens, std::int64_t q_offset) const;
    /// Sum over a CP rank's chunks.
    [[nodiscard]] double attention_fwd_seconds(const runtime::cp_shard& shard) const;
    [[nodiscard]] double attention_bwd_seconds(const runtime::cp_shard& shard) const;

    // ---- linear work, per layer, per rank ----
    /// GEMMs and element-wise work of `tokens` tokens (the tokens this CP rank holds).
    [[nodiscard]] double linear_fwd_seconds(std::int64_t tokens) const;
    [[nodiscard]] double linear_bwd_seconds(std::int64_t tokens) const;
    /// Output layer (logits) and loss for `tokens` tokens, forward, on the last stage.
    [[nodiscard]] double output_layer_fwd_seconds(std::int64_t tokens) const;
    /// The output layer's backward: gemm_bwd_flop_ratio x the forward / the hardware's
    /// output_layer_bwd_rate().
    [[nodiscard]] double output_layer_bwd_seconds(std::int64_t tokens) const;

    // ---- communication inside a layer, per layer, per rank ----
    /// TP collectives of one layer's forward with sequence parallelism (Megatron): two
    /// all-gathers and two reduce-scatters of a [tokens, hidden] bf16 activation. Backward: the
    /// same again. `tokens` is this CP rank's token count.
    [[nodiscard]] double tp_comm_fwd_seconds(std::int64_t tokens) const;
    /// CP all-gather of K and V in one layer's forward (Llama 3, WLB-LLM): every rank gathers
    /// the K and V of all `total_tokens` of the micro-batch (this rank's KV heads only).
    /// Backward: a reduce-scatter of dK and dV of the same size.
    [[nodiscard]] double cp_comm_fwd_seconds(std::int64_t total_tokens) const;
    /// Whether the groups of kind `a` fit inside one node (ranks fill nodes in order).
    [[nodiscard]] bool intra_node(runtime::axis a) const;

    // ---- packing-level predictions (cp = 1 view: the micro-batch on one TP group) ----
    /// W_a(d) + W_l(d), forward, per layer, for a whole document on one TP group with cp = 1
    /// (GEMMs, element-wise, TP collectives and attention). Packers compare micro-batches by
    /// it; it is not divided by cp, since every micro-batch is divided alike.
    [[nodiscard]] double document_fwd_seconds(std::int64_t tokens) const;
    /// Sum of document_fwd_seconds over a micro-batch's documents (what the packers balance).
    [[nodiscard]] double micro_batch_fwd_seconds(const runtime::micro_batch& mb) const;

    // ---- communication ----
    /// A ring collective over `group_size` ranks; `bytes` is the full (gathered / reduced)
    /// buffer size per rank. Ring: (n-1)/n * bytes / bandwidth (x2 for all-reduce) plus (n-1)
    /// latency steps (x2 for all-reduce).
    [[nodiscard]] double collective_seconds(collective kind, double bytes, int group_size,
                                            bool intra_node) const;
    [[nodiscard]] double p2p_seconds(double bytes, bool intra_node) const;

    /// The whole model, serializable so that a calibration can replace it.
    [[nodiscard]] nlohmann::json to_json() const;
    static cost_model from_json(const nlohmann::json& j, std::string_view where);

    /// What the layer compute of a rank costs beyond its own time because its TP x CP group
    /// synchronizes every layer and waits for its slowest member: 1 + the hardware's
    /// lockstep_penalty scaled from lockstep_ranks to the group's g ranks by the expected maximum
    /// of g normal deviates (1 for g = 1 or no penalty). The simulator's step plan applies it
    /// (tuner/cost/plan_durations.hpp); the packers' comparisons do not need it.
    [[nodiscard]] double lockstep_factor() const noexcept { return m_lockstep_factor; }

private:
    double padded_tokens(std::int64_t q_tokens) const noexcept;
    runtime::model_spec m_model;
    hardware_config m_hardware;
    runtime::layout m_layout;
    cost_options m_options;
    double m_gemm_flops_per_token = 0.0; // forward, per layer, per rank
    double m_lockstep_factor = 1.0;
};

/// The expected maximum of n independent standard normal deviates (0 for n = 1; 0.564 for 2,
/// 1.029 for 4, 1.424 for 8).
[[nodiscard]] double expected_normal_maximum(int n);

} // namespace wlb::tuner
