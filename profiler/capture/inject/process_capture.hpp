// One process's capture inside the injection library, as host code: what the CUDA/CUPTI/NVTX
// edge (profiler/capture/inject/cuda/) feeds in (activity records, the job's NVTX ranges,
// cudaProfilerStart/Stop, capture windows, failures), and what it writes: one wlbtune.trace/1
// rank file per process and a report beside it, which `wlbtune profile` gathers into the
// capture's manifest (profiler/capture/launch/).
//
// Files, in the capture directory (mode 0600, written through a temporary name):
//   rank_00003.pid4711.jsonl          the process's trace events (runtime/trace/trace.hpp)
//   rank_00003.pid4711.capture.json   its report (wlbtune.process_capture/1, docs/profile.md)
//
// Records to trace (convert):
//   - steps: profiler/capture/inject/step_detection.hpp picks the source; a window keeps only
//     whole steps: with a live step marker (NVTX step ranges, cudaProfilerStart/Stop) the
//     first `steps` steps that begin after it opened (after `skip_steps` in full mode), else
//     the steps that lie inside it
//   - micro-batches and passes: kernels launched under the job's NVTX ranges are linked to them
//     (CUPTI external correlation); kernels launched on another thread (PyTorch's autograd
//     thread runs the backward) take the innermost range whose time holds their start, else
//     the step by time
//   - lanes: streams that run NCCL collectives are the dp lane, streams that run only NCCL
//     point-to-point kernels the pp lane (the layout is not known inside the process); the rest
//     (profiler/capture/activity_trace.hpp) as for wlbtune's own captures
//   - bounded: at most max_records activity records are kept; the rest are dropped and counted
#pragma once

#include "profiler/capture/activity.hpp"
#include "profiler/capture/activity_trace.hpp"
#include "profiler/capture/inject/inject_config.hpp"
#include "profiler/capture/inject/launcher_env.hpp"
#include "profiler/capture/inject/nvtx_ranges.hpp"
#include "profiler/capture/inject/step_detection.hpp"
#include "runtime/trace/trace.hpp"

#include <cstdint>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace wlb::profiler {

inline constexpr std::string_view process_capture_schema = "wlbtune.process_capture/1";
inline constexpr std::string_view process_report_suffix = ".capture.json";

struct process_meta {
    launcher_identity who;
    long pid = 0;
    std::string host;
    std::vector<std::string> command; ///< the process's argv
    std::string cupti;                ///< the CUPTI loaded, in words ("" before it is)
};

/// A span of time in which capture was on.
struct capture_window {
    std::int64_t opened_ns = 0;
    std::int64_t closed_ns = -1; ///< -1: still open
    std::string opened_by;       ///< "start", "trigger 3", "cudaProfilerStart"
    std::string closed_by;       ///< "2 steps", "20 s", "cudaProfilerStop", "exit", "SIGTERM"
    std::int64_t steps = 0;      ///< steps asked for (0: by time)
    std::int64_t skip_steps = 0; ///< steps to let pass first
    /// The window's steps begin at or after this too: a trigger's time plus the processes' poll
    /// interval, so that every process of the job keeps the same steps (0: none).
    std::int64_t steps_from_ns = 0;
};

struct process_output {
    std::vector<runtime::trace_event> events; ///< in start order
    nlohmann::json report;                    ///< wlbtune.process_capture/1
};

class process_recorder {
public:
    /// Throws std::regex_error when config.step_range is not a valid regex.
    process_recorder(inject_config config, process_meta meta);

    [[nodiscard]] nvtx_tracker& nvtx() noexcept { return m_nvtx; }
    [[nodiscard]] const inject_config& config() const noexcept { return m_config; }

    /// Records from the capture backend (any thread). Activities beyond max_records are
    /// dropped and counted.
    void add(capture_batch&& records);
    void set_cupti(std::string text);
    /// cudaProfilerStart (`start`) or cudaProfilerStop at `t_ns`.
    void profiler_api(bool start, std::int64_t t_ns);
    [[nodiscard]] std::int64_t profiler_api_starts() const;
    [[nodiscard]] std::int64_t profiler_api_stops() const;

    void open_window(capture_window w);
    void close_window(std::int64_t t_ns, std::string why);
    [[nodiscard]] bool window_open() const;
    [[nodiscard]] std::size_t window_count() const;
    /// A failure or a notice, kept for the report (the edge prints it).
    void note(std::string message);

    /// Everything captured so far as this rank's trace events and the report.
    [[nodiscard]] process_output convert() const;
    /// "rank_00003.pid4711" (the files' common stem).
    [[nodiscard]] std::string file_stem() const;
    /// Converts and writes both files into the capture directory. Returns what failed (empty:
    /// written).
    [[nodiscard]] std::string write() const;

private:
    inject_config m_config;
    process_meta m_meta;
    nvtx_tracker m_nvtx;
    mutable std::mutex m_mutex;
    capture_batch m_records;
    std::int64_t m_activities = 0;
    std::uint64_t m_over_limit = 0;
    std::vector<step_span> m_api_spans;
    std::int64_t m_api_open = -1; ///< start of an open cudaProfilerStart span
    std::int64_t m_api_starts = 0;
    std::int64_t m_api_stops = 0;
    std::vector<capture_window> m_windows;
    std::vector<std::string> m_notes;
};

/// The description of how NVTX step ranges are recognized, for reports.
[[nodiscard]] std::string step_names_text(const std::string& step_pattern);

} // namespace wlb::profiler
