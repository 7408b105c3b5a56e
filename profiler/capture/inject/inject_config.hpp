// What `wlbtune profile` tells the injection library, through the environment every process of
// the job inherits (the one protocol between the two: profiler/capture/launch/ writes it with
// inject_environment, the library reads it with read_inject_config). The CUDA driver loads the
// library through CUDA_INJECTION64_PATH and the NVTX library through NVTX_INJECTION64_PATH;
// without WLBTUNE_CAPTURE_DIR the library captures nothing.
//
//   WLBTUNE_CAPTURE_DIR     where each process writes its trace file and report (private: 0700)
//   WLBTUNE_SESSION         the profile run's id, recorded in each process's report
//   WLBTUNE_CAPTURE_MODE    full (capture from CUDA's start), armed (off until `wlbtune
//                           trigger`), profiler-api (on between cudaProfilerStart and Stop)
//   WLBTUNE_STEPS           steps to capture (0: no limit); WLBTUNE_SKIP_STEPS: full mode skips
//                           this many steps first; WLBTUNE_SECONDS: a window's longest duration
//   WLBTUNE_WINDOW_SECONDS  a triggered window's duration when the process shows no step marker
//                           while it runs (no NVTX step range, no cudaProfilerStart/Stop)
//   WLBTUNE_ACTIVITIES      kernel,memcpy,memset,sync (any subset; kernel is always on)
//   WLBTUNE_NVTX            0: ignore the job's NVTX ranges
//   WLBTUNE_STEP_RANGE      ECMAScript regex: NVTX ranges whose name matches are steps
//   WLBTUNE_STEP_SOURCE     auto, nvtx, profiler-api, nccl, none (profiler/capture/inject/
//                           step_detection.hpp)
//   WLBTUNE_POLL_MS         how often the control file is looked at (ms)
//   WLBTUNE_BUFFER_MB, WLBTUNE_BUFFERS, WLBTUNE_MAX_RECORDS   the capture's memory bounds
//   WLBTUNE_CUPTI_LIBRARY   libcupti to load when the process has none loaded yet
#pragma once

#include "profiler/capture/inject/launcher_env.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wlb::profiler {

enum class capture_mode : std::uint8_t { full, armed, profiler_api };
[[nodiscard]] std::string_view capture_mode_name(capture_mode m) noexcept;

enum class step_source : std::uint8_t { automatic, nvtx, profiler_api, nccl_period, none };
/// "auto", "nvtx", "profiler-api", "nccl", "none".
[[nodiscard]] std::string_view step_source_name(step_source s) noexcept;
[[nodiscard]] bool parse_step_source(std::string_view text, step_source& out) noexcept;

/// Which device activity to record (kernels always).
struct activity_selection {
    bool memcpy = true;
    bool memset = true;
    bool sync = true;
    friend bool operator==(const activity_selection&, const activity_selection&) = default;
};
/// "kernel,memcpy,memset,sync" (any subset, in any order; "all"). False, with `problem` set, on
/// an unknown name.
[[nodiscard]] bool parse_activities(std::string_view text, activity_selection& out,
                                    std::string& problem);
[[nodiscard]] std::string activities_text(const activity_selection& a);

struct inject_config {
    std::string capture_dir; ///< empty: the library was not started by `wlbtune profile`
    std::string session;
    capture_mode mode = capture_mode::full;
    std::int64_t steps = 0;       ///< 0: no limit
    std::int64_t skip_steps = 0;  ///< full mode
    double seconds = 0.0;         ///< 0: no limit
    double window_seconds = 20.0; ///< triggered window without a live step marker
    activity_selection activities;
    bool nvtx = true;
    std::string step_range; ///< empty: the built-in step names (nvtx_ranges.hpp)
    step_source steps_from = step_source::automatic;
    int poll_ms = 500;
    std::size_t buffer_bytes = std::size_t{4} << 20;
    int max_buffers = 16;
    std::int64_t max_records = 4'000'000;
    std::string cupti_library;
    friend bool operator==(const inject_config&, const inject_config&) = default;
};

/// Reads the configuration; a malformed value keeps its default and adds a warning naming the
/// variable.
[[nodiscard]] inject_config read_inject_config(const env_lookup& env,
                                               std::vector<std::string>& warnings);

/// The WLBTUNE_* variables that make read_inject_config return `c` (every field written).
[[nodiscard]] std::vector<std::pair<std::string, std::string>>
inject_environment(const inject_config& c);

inline constexpr const char* cuda_injection_variable = "CUDA_INJECTION64_PATH";
inline constexpr const char* nvtx_injection_variable = "NVTX_INJECTION64_PATH";

} // namespace wlb::profiler
