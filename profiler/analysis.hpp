// `wlbtune analyze` as a library: ingest a job's traces, break each rank's step time down,
// find stragglers, and attribute the lost seconds to their causes by what-if replays on the
// simulator (profiler/attribution.hpp).
#pragma once

#include "profiler/attribution.hpp"
#include "profiler/breakdown.hpp"
#include "profiler/ingest.hpp"
#include "profiler/job_trace.hpp"
#include "profiler/stragglers.hpp"
#include "profiler/work_check.hpp"

#include <string>
#include <vector>

namespace wlb::profiler {

struct analysis_options {
    ingest_options ingest;
    bool keep_ideal = false; ///< keep the ideal timelines (for the Perfetto export)
};

struct analysis_result {
    job_trace job;
    std::vector<step_breakdown> breakdown;
    straggler_report stragglers;
    attribution_result attribution;
    /// The lost time against the batches' predicted work (where the trace records batches).
    work_check work;
};

analysis_result analyze(const std::vector<std::string>& paths, const analysis_options& options);

/// The same on a job already in memory (ingested; clocks aligned).
analysis_result analyze_job(job_trace job, bool keep_ideal);

} // namespace wlb::profiler
