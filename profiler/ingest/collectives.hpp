// Collective instances across ranks: the same collective seen in the trace of every member of
// its group. Matched by the group and sequence number when the source gives one (Kineto's
// "Seq"), else by order: the k-th collective of one name in a (group, step, micro-batch, model
// chunk, pass) on every member, kept only where every member holds the same count (a member
// missing an event would shift the order of all that follow).
//
// An instance tells the last arrival (the member whose event is shortest: it did not wait), the
// wait it imposed on the others, and the transfer time itself (the shortest member's duration).
#pragma once

#include "profiler/ingest/job_trace.hpp"

#include <cstdint>
#include <vector>

namespace wlb::profiler {

struct collective_member {
    int rank = 0;
    std::size_t event = 0; ///< index into job.ranks[rank].events
};

struct collective_instance {
    std::int32_t group = -1;
    std::int32_t step = -1;
    std::vector<collective_member> members; ///< every member of the group, by rank
};

/// Matches every collective (kind collective, with a group) of the job. Groups whose ranks the
/// source does not list are matched over the ranks that hold events of them.
std::vector<collective_instance> match_collectives(const job_trace& job);

} // namespace wlb::profiler
