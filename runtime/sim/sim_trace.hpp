// Turns a simulated step (plan + result) into trace events (runtime/trace/trace.hpp). Each `layers`
// operation is expanded back into its per-layer slices: the CP collective (waiting for the
// slowest peer included) on the cp lane, attention then linear work on the compute lane, the
// TP collectives on the tp lane. TP peers were simulated once (see step_plan.hpp): their
// events are copies of their TP rank 0's, and the trace says so (trace_meta::tp_replicated).
#pragma once

#include "runtime/plan/step_plan.hpp"
#include "runtime/sim/simulator.hpp"
#include "runtime/trace/trace.hpp"

#include <cstdint>

namespace wlb::runtime {

/// Appends one step's events to `t` (t.ranks is resized to the world size), every time shifted
/// by `offset_ns`. Flow ids of point-to-point pairs start above `flow_base`; returns the next
/// free base. Each rank's events stay sorted by start.
std::int64_t append_step_trace(trace& t, const step_plan& plan, const sim_result& result,
                               std::int64_t offset_ns, std::int64_t flow_base = 0);

} // namespace wlb::runtime
