// Puts the clocks of all ranks on one time line. Ranks of a job run on different hosts whose
// clocks disagree by microseconds to seconds; a collective ends at the same instant on every
// member (its last arrival releases all), so the ends of matched collectives
// (profiler/collectives.hpp) give each rank's offset against its peers: the median difference
// of ends over every collective two ranks share, chained from the lowest rank through the
// groups. Users may give the offsets instead (--clock-offset R=NS), or none.
#pragma once

#include "profiler/collectives.hpp"
#include "profiler/ingest.hpp"
#include "profiler/job_trace.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace wlb::profiler {

/// Computes the offsets (automatic mode) or takes them (given), adds them to every event, and
/// shifts the whole job so that its first event starts at 0. `instances` are the job's matched
/// collectives (before alignment; matching does not depend on time).
clock_alignment align_clocks(job_trace& job, const std::vector<collective_instance>& instances,
                             const clock_option& option);

} // namespace wlb::profiler
