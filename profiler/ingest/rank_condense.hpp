// What happens to each rank's events as soon as they are read, on the thread that read them, so
// that a job's memory grows with ranks x steps x micro-batches and not with its events
// (profiler/ingest/job_trace.hpp):
//
//   1. the events are sorted by start; one that lies inside an earlier event of the same stream
//      and lane is left out, one that overlaps it has its start moved to the earlier one's end
//      (a stream runs one thing at a time), with a warning;
//   2. a truncated file's incomplete last step is left out, with a warning;
//   3. the rank's time in each step is summarized (step_summary): compute by class, the union of
//      compute intervals and of every interval off the host lane, each communication lane's
//      time and how much of it no compute overlapped, the first and last instants;
//   4. unless every event is to be kept, compute (and host) events of the same step,
//      micro-batch, model chunk, pass, lane, name, stream and work class are merged into one
//      record (count, summed duration, mean start). Communication stays one record per
//      collective or transfer: clock alignment, last arrivals and a collective's transfer time
//      (its quickest member) need each instance on every member, and the last arrival of
//      consecutive collectives of one pass is not always the same rank.
#pragma once

#include "profiler/ingest/job_trace.hpp"

#include <string_view>

namespace wlb::profiler {

/// Steps 1-4 on `rt` (its events and summaries); warnings go to `part`, naming `who` ("rank 5",
/// "process 3, thread 7") in `rt.file`.
void condense_rank(rank_trace& rt, trace_part& part, std::string_view who, bool keep_events);

} // namespace wlb::profiler
