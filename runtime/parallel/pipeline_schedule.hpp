// Pipeline schedules: the order in which one pipeline rank runs the forward and backward passes
// of its micro-batches and model chunks (design.md section 2, "step plan").
//
// - 1F1B (PipeDream-Flush, Megatron's non-interleaved schedule): pp rank p runs
//   min(P - p - 1, M) warm-up forwards, then alternates one forward and one backward, then
//   drains the remaining backwards.
// - Interleaved 1F1B (Megatron, vpp = V model chunks per rank): micro-batches go through the
//   chunks in groups of N consecutive micro-batches (N = P in Megatron's original order; Llama 3
//   tunes N, Megatron calls it microbatch_group_size_per_vp_stage). Forward k (of M*V) runs
//   chunk (k mod N*V) / N on micro-batch (k / (N*V)) * N + k mod N; backward k runs the chunks
//   in reverse. Warm-up: (P - p - 1) * 2 + (V - 1) * N forwards, capped at M*V (then every
//   forward runs before every backward).
//
// Micro-batches may have different lengths: the schedule is an order only; the step plan gives
// each operation its own duration, so the pipeline is a variable-length pipeline.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace wlb::runtime {

enum class pass : std::uint8_t { fwd, bwd };

/// One compute slot of a pipeline rank's order.
struct pipeline_slot {
    pass phase = pass::fwd;
    int micro_batch = 0;   ///< index within the DP replica, [0, M)
    int virtual_stage = 0; ///< model chunk on this pp rank, [0, V)
    friend bool operator==(const pipeline_slot&, const pipeline_slot&) = default;
};

struct schedule_options {
    /// Consecutive micro-batches per model chunk in the interleaved order; 0 means P
    /// (Megatron's default). Ignored when vpp = 1. Llama 3's schedule tunes it.
    int micro_batch_group = 0;
    [[nodiscard]] std::string describe(int pp, int vpp) const;
};

/// Parses "1f1b" (vpp must then be 1), "interleaved" (Megatron, N = P) or "llama3:N" (N
/// consecutive micro-batches per model chunk) and "auto" (interleaved when vpp > 1, else 1F1B).
/// Throws wlb::input_error naming the text.
schedule_options parse_schedule(std::string_view text, int vpp);

/// The compute order of pp rank `pp_rank` for `micro_batches` micro-batches, `pp` stages and
/// `vpp` model chunks per rank: 2 * M * V slots, each (phase, micro-batch, chunk) exactly once.
/// Throws wlb::input_error when the interleaved order cannot be formed (M not a multiple of N,
/// or N < P).
std::vector<pipeline_slot> pipeline_order(int pp, int vpp, int micro_batches, int pp_rank,
                                          const schedule_options& options = {});

/// How the model's layers are cut into P * V model chunks (chunk c = v * P + p runs on pp
/// rank p as its virtual stage v). The first chunk also holds the input embedding, the last
/// the output layer and loss.
struct stage_partition {
    std::vector<int> layers; ///< per model chunk, P * V entries, each >= 1
    [[nodiscard]] int chunks() const noexcept { return static_cast<int>(layers.size()); }
    [[nodiscard]] int total_layers() const noexcept;
    [[nodiscard]] std::string describe() const;
};

/// "even" (layers / chunks each, the remainder one extra on the middle chunks), "llama3" (the
/// first and last chunk one layer fewer, to make room for the embedding and the output layer,
/// as Llama 3), or an explicit list "7,8,8,7" of P * V counts that sum to `layers`. Throws
/// wlb::input_error naming the text when the counts cannot be formed.
stage_partition make_stage_partition(std::string_view policy, int layers, int chunks);

} // namespace wlb::runtime
