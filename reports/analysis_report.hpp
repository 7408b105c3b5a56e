// Reports of `wlbtune analyze`: the terminal summary (the answer first: how much of the step
// time is lost, to which cause, what to change), the versioned JSON report (wlbtune.analysis/1)
// and the Perfetto trace (measured timeline, the ideal one beside it, stragglers marked).
// Attribution figures are simulated what-if replays over measured durations and say so.
#pragma once

#include "base/provenance.hpp"
#include "profiler/analysis/analysis.hpp"

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace wlb::reports {

inline constexpr std::string_view analysis_schema = "wlbtune.analysis/1";

/// The configuration change that removes a cause, and the command that gets there: one the
/// input allows, runnable as printed (the job's own command with the change, for wlbtune's
/// traces), else empty with what it would take in `needs`.
struct recommendation {
    std::string text;
    std::string command;
    std::string needs;
};
recommendation recommend(const profiler::analysis_result& r, profiler::cause c);

std::string analysis_text(const profiler::analysis_result& r, int max_steps = 12);

nlohmann::json analysis_json(const profiler::analysis_result& r,
                             const std::vector<wlb::input_identity>& inputs);

/// Identity (path, size, hash) of every file the job was read from (a wlbtune trace directory
/// contributes its manifest and rank files).
std::vector<wlb::input_identity> identify_inputs(const profiler::job_trace& job);

/// Writes the Perfetto trace: per rank one process (reports/perfetto.hpp naming) with the
/// measured events on threads per lane (and stream), the ideal timeline of each attributed step
/// on "ideal ..." threads, and a "stragglers" thread marking each step a rank was flagged in.
/// Needs the result of analyze with keep_ideal for the ideal timeline.
void write_analysis_perfetto(const profiler::analysis_result& r, const std::string& path);

/// The lines naming the files analyze wrote: the Perfetto trace (when `perfetto` is not empty)
/// and the JSON report (when `json` names a file).
std::string analysis_output_notes(const std::string& perfetto, const std::string& json);

} // namespace wlb::reports
