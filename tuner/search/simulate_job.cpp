#include "tuner/search/simulate_job.hpp"

#include "runtime/sim/sim_trace.hpp"
#include "runtime/sim/simulator.hpp"

#include <cmath>

namespace wlb::tuner {

job_simulation::job_simulation(const cost_model& costs, simulate_job_options options,
                               const runtime::duration_model* durations)
    : m_costs(costs), m_options(std::move(options)) {
    if (durations) {
        m_durations = durations;
    } else {
        m_own_durations.emplace(costs);
        m_durations = &*m_own_durations;
    }
    auto& meta = m_result.trace.meta;
    meta.source = "simulated";
    meta.job_layout = costs.layout();
    meta.tp_replicated = true;
    meta.note = durations
                    ? std::string("simulated by wlbtune: durations from a given duration "
                                  "model; TP peers replicate their TP rank 0")
                    : "simulated by wlbtune: durations from the cost model (" + costs.model().name +
                          " on " + costs.hardware().name + "); TP peers replicate their TP rank 0";
}

const runtime::step_summary& job_simulation::add(const runtime::sharded_step& step) {
    const auto plan =
        runtime::build_step_plan(m_costs.layout(), step, *m_durations, m_options.plan);
    const auto sim = runtime::simulate(plan, m_options.faults);
    m_result.steps.push_back(
        runtime::summarize_step(plan, sim, m_options.faults, m_options.top_ranks));
    m_result.total_seconds += sim.step_seconds;
    m_result.trace.meta.steps += 1;
    if (m_options.keep_trace) {
        m_flow_base =
            runtime::append_step_trace(m_result.trace, plan, sim, m_offset_ns, m_flow_base);
        m_offset_ns += std::llround(sim.step_seconds * 1e9);
        m_result.trace.batches.push_back(step);
    }
    return m_result.steps.back();
}

simulate_job_result simulate_job(const cost_model& costs,
                                 const std::vector<runtime::sharded_step>& steps,
                                 const simulate_job_options& options) {
    job_simulation job(costs, options);
    for (const auto& step : steps)
        job.add(step);
    return std::move(job).take();
}

} // namespace wlb::tuner
