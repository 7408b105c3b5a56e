// `wlbtune analyze` as a library: ingest a job's traces, break each rank's step time down,
// find stragglers, and attribute the lost seconds to their causes by what-if replays on the
// simulator (profiler/analysis/attribution.hpp).
#pragma once

#include "profiler/analysis/attribution.hpp"
#include "profiler/analysis/breakdown.hpp"
#include "profiler/analysis/stragglers.hpp"
#include "profiler/analysis/work_check.hpp"
#include "profiler/ingest/ingest.hpp"
#include "profiler/ingest/job_trace.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wlb::profiler {

/// Steps to analyze, by step id, both ends included; an end left out is open.
struct step_range {
    std::optional<std::int64_t> first;
    std::optional<std::int64_t> last;
    [[nodiscard]] bool all() const noexcept { return !first && !last; }
    /// As parse_step_range takes it: "2:7", "1:", ":5".
    [[nodiscard]] std::string describe() const;
};

/// "A:B", "A:", ":B" or "A" (that step alone), A and B >= 0. Throws wlb::input_error naming
/// --steps and the text.
step_range parse_step_range(std::string_view text);

/// Leaves out the steps outside `range`: their events (events outside every step stay) and
/// their batches; records the selection in job.step_selection. Throws wlb::input_error naming
/// the steps the trace has when none is left.
void select_steps(job_trace& job, const step_range& range);

struct analysis_options {
    ingest_options ingest;
    bool keep_ideal = false; ///< keep the ideal timelines (for the Perfetto export)
    step_range steps;        ///< analyze these steps only (e.g. leave out a warm-up)
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
