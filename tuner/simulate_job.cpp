#include "tuner/simulate_job.hpp"

#include "runtime/sim_trace.hpp"
#include "runtime/simulator.hpp"
#include "tuner/plan_durations.hpp"

#include <cmath>

namespace wlb::tuner {

simulate_job_result simulate_job(const cost_model& costs,
                                 const std::vector<runtime::sharded_step>& steps,
                                 const simulate_job_options& options) {
    const cost_duration_model durations(costs);
    simulate_job_result out;
    out.trace.meta.source = "simulated";
    out.trace.meta.job_layout = costs.layout();
    out.trace.meta.steps = static_cast<std::int64_t>(steps.size());
    out.trace.meta.tp_replicated = true;
    out.trace.meta.note = "simulated by wlbtune: durations from the cost model (" +
                          costs.model().name + " on " + costs.hardware().name +
                          "); TP peers replicate their TP rank 0";
    std::int64_t offset_ns = 0, flow_base = 0;
    for (const auto& step : steps) {
        const auto plan = runtime::build_step_plan(costs.layout(), step, durations, options.plan);
        const auto result = runtime::simulate(plan, options.faults);
        out.steps.push_back(
            runtime::summarize_step(plan, result, options.faults, options.top_ranks));
        out.total_seconds += result.step_seconds;
        if (options.keep_trace) {
            flow_base = runtime::append_step_trace(out.trace, plan, result, offset_ns, flow_base);
            offset_ns += std::llround(result.step_seconds * 1e9);
        }
    }
    return out;
}

} // namespace wlb::tuner
