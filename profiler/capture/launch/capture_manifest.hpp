// A `wlbtune profile` capture directory becomes a wlbtune.trace/1 trace (runtime/trace/trace.hpp)
// that `wlbtune analyze` reads: the manifest lists, per rank, the trace file its process wrote
// (profiler/capture/inject/process_capture.hpp), and carries what the capture was in "capture"
// (docs/profile.md: the command, its exit, the processes, their steps and windows, what was lost,
// what was left out and why).
//
// Which processes: the reports of this run's session in the directory (another session's are
// left out with a note). Two processes claiming one rank (a restarted worker): the one with more
// events is kept. The layout: the one given, else the job's flags (profiler/capture/launch/
// job_layout.hpp), else every rank a DP replica over the largest world the processes report.
#pragma once

#include "profiler/capture/launch/job_process.hpp"

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wlb::profiler {

inline constexpr std::string_view profile_schema = "wlbtune.profile/1";

/// What the manifest records about the run besides the processes' reports.
struct capture_run {
    std::string dir;
    std::string session;
    std::vector<std::string> command;
    std::optional<job_exit> exit; ///< absent when assembling after the fact (--finalize)
    nlohmann::json options;       ///< the capture's options, as given
    std::string library;          ///< the injection library used ("" in a build without CUDA)
    std::string layout;           ///< --layout ("" : from the job)
    std::string order;            ///< --order
    std::vector<std::string> notes;
};

struct capture_summary {
    std::string manifest;   ///< its path
    bool cuda_used = false; ///< some process of the job initialized CUDA
    int processes = 0;      ///< reports of this session
    std::vector<int> ranks; ///< ranks with a trace file in the manifest
    std::string layout, order, layout_source;
    std::int64_t steps = 0;     ///< steps kept, the most of any rank
    std::string step_sources;   ///< "nvtx" or "nvtx (ranks 0-3), nccl (4-7)"
    bool micro_batches = false; ///< some rank's kernels carry micro-batches
    std::uint64_t dropped_records = 0;
    std::vector<std::string> notes; ///< what the user should know (left out, warnings)
};

/// Reads the session's process reports in `run.dir` and writes `run.dir`/manifest.json
/// (atomically). Throws wlb::input_error when a given --layout is malformed, wlb::runtime_failure
/// when the manifest cannot be written.
capture_summary write_capture_manifest(const capture_run& run);

/// The sessions whose process reports are in `dir`, most recent first.
[[nodiscard]] std::vector<std::string> sessions_in(const std::string& dir);

} // namespace wlb::profiler
