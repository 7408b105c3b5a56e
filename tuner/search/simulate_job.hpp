// Simulates a sequence of sharded steps with the cost model (the library behind
// `wlbtune simulate`): one step plan and one simulator run per step, a summary per step, and
// optionally the whole trace (steps laid end to end). Figures are simulated.
//
// job_simulation is the incremental form (one step at a time, so a caller that packs and
// shards on the fly never holds the whole run); simulate_job runs it over a vector of steps.
#pragma once

#include "runtime/plan/duration_model.hpp"
#include "runtime/plan/step_plan.hpp"
#include "runtime/sim/fault.hpp"
#include "runtime/sim/sim_summary.hpp"
#include "runtime/trace/trace.hpp"
#include "tuner/cost/cost_model.hpp"
#include "tuner/cost/plan_durations.hpp"

#include <optional>
#include <vector>

namespace wlb::tuner {

struct simulate_job_options {
    runtime::plan_options plan;
    std::vector<runtime::fault> faults;
    bool keep_trace = false;
    int top_ranks = 3;
};

struct simulate_job_result {
    std::vector<runtime::step_summary> steps;
    double total_seconds = 0.0;
    runtime::trace trace; ///< filled when keep_trace
};

/// Simulates steps one at a time and accumulates a simulate_job_result. `costs` gives the
/// layout and, unless `durations` is given, the durations (cost_duration_model); `durations`
/// (a measured or fake duration model) must outlive the object. Faults must have passed
/// runtime::validate_fault for the layout.
class job_simulation {
public:
    job_simulation(const cost_model& costs, simulate_job_options options,
                   const runtime::duration_model* durations = nullptr);

    /// Builds the step's plan, simulates it, appends its summary (and trace); returns the
    /// summary. Throws wlb::input_error when the step does not fit the layout or the plan
    /// options (see runtime::build_step_plan).
    const runtime::step_summary& add(const runtime::sharded_step& step);

    [[nodiscard]] const simulate_job_result& result() const noexcept { return m_result; }
    [[nodiscard]] simulate_job_result take() && { return std::move(m_result); }

private:
    const cost_model& m_costs;
    simulate_job_options m_options;
    std::optional<cost_duration_model> m_own_durations;
    const runtime::duration_model* m_durations = nullptr;
    simulate_job_result m_result;
    std::int64_t m_offset_ns = 0;
    std::int64_t m_flow_base = 0;
};

simulate_job_result simulate_job(const cost_model& costs,
                                 const std::vector<runtime::sharded_step>& steps,
                                 const simulate_job_options& options);

} // namespace wlb::tuner
