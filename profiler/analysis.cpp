#include "profiler/analysis.hpp"

#include "profiler/collectives.hpp"

namespace wlb::profiler {

analysis_result analyze_job(job_trace job, bool keep_ideal) {
    analysis_result out;
    out.job = std::move(job);
    const step_index index(out.job);
    const auto instances = match_collectives(out.job);
    out.breakdown = compute_breakdown(out.job, index);
    out.stragglers = find_stragglers(out.job, index, instances);
    attribution_options ao;
    ao.keep_ideal = keep_ideal;
    work_checker checker(out.job.batches, ao.noise);
    ao.observe = [&](const measured_step& m, const step_attribution& a) {
        checker.add(m, a);
    };
    out.attribution = attribute(out.job, index, instances, ao);
    out.work = std::move(checker).finish();
    return out;
}

analysis_result analyze(const std::vector<std::string>& paths, const analysis_options& options) {
    return analyze_job(ingest(paths, options.ingest), options.keep_ideal);
}

} // namespace wlb::profiler
