// Host-timer capture seam of the real executors: compute_step_gradients reports every operation
// it runs (compute, collective, point-to-point) with its host start time and duration, so a
// capture backend can turn them into the trace format of design.md section 4 (rank, lane, name,
// start_ns, dur_ns, micro-batch, stage, virtual stage, phase, bytes) without the executor
// knowing that format. The executor calls record() on the calling thread, in program order.
#pragma once

#include <cstdint>
#include <string_view>

namespace wlb::runtime {

/// Where an operation runs or waits: compute, or the collective/transfer of one group.
enum class op_lane : std::uint8_t { compute, tp, cp, pp, dp };
enum class op_phase : std::uint8_t { forward, backward };

[[nodiscard]] std::string_view op_lane_name(op_lane lane) noexcept;
[[nodiscard]] std::string_view op_phase_name(op_phase phase) noexcept;

struct op_record {
    std::string_view name; ///< static text: "attention", "qkv_proj", "kv_all_gather", ...
    op_lane lane = op_lane::compute;
    op_phase phase = op_phase::forward;
    int micro_batch = -1;      ///< index in the replica's micro-batches; -1 for step-level ops
    int virtual_stage = 0;     ///< model chunk of the stage (0 without interleaving)
    int layer = -1;            ///< model layer index; -1 outside the layers (embedding, head, ...)
    std::int64_t start_ns = 0; ///< std::chrono::steady_clock, nanoseconds since its epoch
    std::int64_t dur_ns = 0;
    std::int64_t bytes = 0; ///< bytes this rank sends, receives or contributes (communication)
};

class step_observer {
public:
    step_observer() = default;
    virtual ~step_observer() = default;
    step_observer(const step_observer&) = delete;
    step_observer& operator=(const step_observer&) = delete;
    virtual void record(const op_record& op) = 0;
};

} // namespace wlb::runtime
