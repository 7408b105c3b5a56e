// The discrete-event simulator: executes a step plan with its durations (scaled by injected
// faults) and returns when every operation started and ended, the step time, the critical
// path, and per-unit busy / exposed-communication / idle time. One simulator serves the
// tuner, `simulate` and the what-if attribution (design.md section 2).
//
// Semantics (the contract the plan's header describes): each unit runs its main stream and its
// DP stream in order, one operation at a time per stream. A compute or send starts when its
// stream is free (and its dependency done); a receive ends when its send has ended; a group
// operation (CP-synchronized layers, a collective) starts for everyone at the last member's
// arrival. The run is a worklist over streams: O(operations), no event queue.
#pragma once

#include "runtime/plan/step_plan.hpp"
#include "runtime/sim/fault.hpp"

#include <string>
#include <vector>

namespace wlb::runtime {

/// One piece of the critical path: [from_seconds, to_seconds) spent in `op`. For a layers op,
/// `compute_unit` is the unit whose per-layer work paced the CP group (the slowest peer).
struct critical_segment {
    int op = -1;
    int compute_unit = -1;
    double from_seconds = 0.0;
    double to_seconds = 0.0;
};

struct unit_time {
    double busy_seconds = 0.0;         ///< compute (linear, attention, output layer, optimizer)
    double exposed_comm_seconds = 0.0; ///< main stream inside TP/CP/PP communication, waits
                                       ///< included, plus the optimizer's wait for the DP stream
    double idle_seconds = 0.0;         ///< step time minus the two above (bubbles, tail)
    double attention_seconds = 0.0;    ///< part of busy
    double dp_comm_seconds = 0.0;      ///< DP-stream time (overlapped or not)
};

struct sim_result {
    double step_seconds = 0.0;
    std::vector<double> start_seconds; ///< per op: when its unit reached it (arrival)
    std::vector<double> end_seconds;   ///< per op
    /// Per op: for group ops the start of the group (last arrival); else = start.
    std::vector<double> sync_seconds;
    /// Per layers op: its own per-layer work (scaled) and the group's layer period
    /// (CP collective + the slowest peer's per-layer work).
    std::vector<double> own_layer_seconds;
    std::vector<double> layer_period_seconds;
    std::vector<unit_time> units;
    std::vector<critical_segment> critical_path; ///< in time order, tiling [0, step_seconds]
    /// Per op: the combined compute factor (1 without faults); per op: the comm factor.
    std::vector<double> compute_factor;
    std::vector<double> comm_factor;
    std::vector<double> tp_factor; ///< per unit: TP collectives (slow links inside its group)
};

/// Runs the plan. `faults` must have passed validate_fault() for the plan's layout; a heavy
/// micro-batch index beyond a replica's count throws wlb::input_error. Throws
/// wlb::internal_error if the plan deadlocks (a bug in the plan).
sim_result simulate(const step_plan& plan, const std::vector<fault>& faults = {});

/// Wall seconds of the layer-`k` end (1-based, k <= layers) of a layers op on its own unit.
double layer_end_seconds(const sim_result& r, const plan_op& op, int op_id, int k);

} // namespace wlb::runtime
