// Simulates a sequence of sharded steps with the cost model (the library behind
// `wlbtune simulate`): one step plan and one simulator run per step, a summary per step, and
// optionally the whole trace (steps laid end to end). Figures are simulated.
#pragma once

#include "runtime/fault.hpp"
#include "runtime/sim_summary.hpp"
#include "runtime/step_plan.hpp"
#include "runtime/trace.hpp"
#include "tuner/cost_model.hpp"

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

simulate_job_result simulate_job(const cost_model& costs,
                                 const std::vector<runtime::sharded_step>& steps,
                                 const simulate_job_options& options);

} // namespace wlb::tuner
