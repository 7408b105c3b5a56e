// The capture options of `wlbtune profile`, written once apart from the command: when to capture
// (--armed, --capture-range, --steps, --skip-steps, --seconds, --window-seconds), what
// (--activities, --no-nvtx, --step-range, --step-source) and within which bounds (--cupti,
// --poll-ms, --buffer-mb, --buffers, --max-records). Words fill a profiler::capture_flags that
// profiler::apply_capture_flags checks; numbers go to the inject_config directly.
#pragma once

#include "profiler/capture/launch/profile_job.hpp"

#include <CLI/CLI.hpp>

namespace wlb::cli {

void add_capture_options(CLI::App& sub, profiler::capture_flags& flags,
                         profiler::inject_config& cap);

} // namespace wlb::cli
