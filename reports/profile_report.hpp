// What `wlbtune profile` and `wlbtune trigger` print (on stderr: the profiled command owns
// stdout): how the command ended, where the capture is and what it holds, what to run next.
#pragma once

#include "profiler/capture/launch/profile_job.hpp"

#include <string>

namespace wlb::reports {

[[nodiscard]] std::string profile_text(const profiler::profile_result& r);
[[nodiscard]] std::string trigger_text(const std::string& dir, const profiler::trigger_request& t);

} // namespace wlb::reports
