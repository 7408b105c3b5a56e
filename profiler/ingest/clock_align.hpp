// Puts the clocks of all ranks on one time line. Ranks of a job run on different hosts whose
// clocks disagree by microseconds to seconds; a collective ends at the same instant on every
// member (its last arrival releases all), so the ends of matched collectives
// (profiler/ingest/collectives.hpp) give each rank's offset against its peers: the median
// difference of ends over every collective two ranks share, chained from the lowest rank through
// the groups. Users may give the offsets instead (--clock-offset R=NS), or none.
#pragma once

#include "profiler/ingest/collectives.hpp"
#include "profiler/ingest/job_trace.hpp"

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace wlb::profiler {

/// How clocks of different ranks are put on one time line.
struct clock_option {
    enum class mode { automatic, none, given };
    mode how = mode::automatic;
    std::map<int, std::int64_t> offsets_ns; ///< given: added to a rank's timestamps
};
/// "auto" (align on collective ends), "none", or "R=NS[,R=NS...]" (nanoseconds added to rank
/// R's timestamps; suffixes us, ms, s allowed: "3=-1.5ms"). Throws wlb::usage_error.
clock_option parse_clock_option(std::string_view text);

/// Computes the offsets (automatic mode) or takes them (given), adds them to every event, and
/// shifts the whole job so that its first event starts at 0. `instances` are the job's matched
/// collectives (before alignment; matching does not depend on time).
clock_alignment align_clocks(job_trace& job, const std::vector<collective_instance>& instances,
                             const clock_option& option);

} // namespace wlb::profiler
