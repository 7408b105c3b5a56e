// Host-timer capture seam of the real executors: compute_step_gradients reports every operation
// it runs (compute, collective, point-to-point, host-side batch layout) with its host start time
// and duration, so a capture backend (runtime/trace/trace_capture.hpp) can turn them into the trace
// format of design.md section 4 (rank, lane, name, start_ns, dur_ns, micro-batch, stage, virtual
// stage, phase, bytes) without the executor knowing that format. The executor calls record() on
// the calling thread, in program order, so one rank's operations never overlap.
//
// Names are static text in the trace's vocabulary, the one the simulator's trace uses where an
// operation has a simulated counterpart ("attention fwd", "cp all-gather kv", "send activation",
// "grad all-reduce", "optimizer step", ...); docs/cpu-runtime.md lists them.
#pragma once

#include <cstdint>
#include <string_view>

namespace wlb::runtime {

/// Where an operation runs or waits: compute, the collective/transfer of one group, or host-side
/// work that is neither (laying out a micro-batch's tokens).
enum class op_lane : std::uint8_t { compute, tp, cp, pp, dp, host };
enum class op_phase : std::uint8_t { forward, backward, optimizer };
/// What an operation is: local work, a collective over its lane's group (time inside it, waiting
/// for the slowest member included), or one side of a point-to-point transfer.
enum class op_type : std::uint8_t { compute, collective, send, recv };

[[nodiscard]] std::string_view op_lane_name(op_lane lane) noexcept;
[[nodiscard]] std::string_view op_phase_name(op_phase phase) noexcept;

struct op_record {
    std::string_view name; ///< static text: "attention fwd", "qkv proj fwd", ...
    op_lane lane = op_lane::compute;
    op_type type = op_type::compute;
    op_phase phase = op_phase::forward;
    int micro_batch = -1;      ///< index in the replica's micro-batches; -1 for step-level ops
    int virtual_stage = 0;     ///< model chunk of the stage (0 without interleaving)
    int layer = -1;            ///< model layer index; -1 outside the layers (embedding, head, ...)
    std::int64_t start_ns = 0; ///< std::chrono::steady_clock, nanoseconds since its epoch
    std::int64_t dur_ns = 0;
    std::int64_t bytes = 0; ///< bytes this rank sends, receives or contributes (communication)
    /// send / recv: the world rank on the other side, and the message's number within the step
    /// between the two (the same on both sides; it links a send to its receive).
    int peer_world_rank = -1;
    std::int64_t message = -1;
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
