// How a communicator waits between polls of an outstanding operation (the watchdogs of the MPI
// and NCCL communicators): spin, then yield, then sleep, so that oversubscribed ranks (more
// ranks than cores) leave the CPU to the peers they wait for.
#pragma once

namespace wlb::runtime {

/// Call after the `polls`-th unsuccessful poll: returns at once for the first 64, yields the
/// CPU up to 2048, then sleeps 200 microseconds.
void poll_backoff(int polls);

} // namespace wlb::runtime
