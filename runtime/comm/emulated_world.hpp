// Every rank of a layout in one process, on one device (issue [cuda-run]: `run --backend cuda
// --emulate`, the machines at hand have one GPU). Each rank is a thread with its own compute
// device object (on a GPU: its own stream and cuBLAS handle on the shared device); the ranks run
// ONE AT A TIME: a rank runs until it waits for a peer (a collective some member has not reached,
// a message not sent yet), synchronizes its device and hands over to the lowest rank that can
// go on. So every rank's work runs alone on the device and is timed alone, with its real data
// and real kernels.
//
// Communication is real data movement: the member that reaches a collective last carries it out
// as device copies between the members' buffers (sums of bf16 accumulated in fp32, in member
// order); a send copies the message into a staging buffer that the receiver copies out. So the
// numbers are exactly those of the parallel job.
//
// Time: each rank keeps a virtual clock (seconds), advanced by the measured durations of its own
// work (runtime/train/op_recorder.hpp); a collective ends, for every member, at the latest
// member's arrival plus its duration; a send occupies its sender for the transfer and the
// message arrives at the send's end; a receive ends at the later of its start and the arrival.
// A transfer's duration is either the measured device copies (emulated_comm_model empty) or
// the caller's model (the cost model's collective and point-to-point times): the timeline of
// the parallel job under those durations, which the trace then shows (docs/cuda-runtime.md).
//
// A wait that no rank can end (a deadlock: the ranks' orders disagree) ends every rank with
// wlb::runtime_failure naming each rank's wait, instead of hanging.
#pragma once

#include "runtime/comm/device_comm.hpp"
#include "runtime/plan/duration_model.hpp"

#include <functional>
#include <memory>
#include <span>
#include <string>

namespace wlb::runtime {

/// A rank's time in an emulated job: seconds since the job started.
struct virtual_clock {
    double now_s = 0.0;
};

/// Durations of the emulated job's transfers; both empty: the measured device copies.
struct emulated_comm_model {
    /// One collective over `members` (world ranks); `bytes` is the full (gathered or reduced)
    /// buffer per member, in the job's number format (bf16: 2 bytes).
    std::function<double(collective_kind kind, double bytes, std::span<const int> members)>
        collective_seconds;
    /// One point-to-point transfer of `bytes` from world rank `src` to `dst`.
    std::function<double(double bytes, int src, int dst)> p2p_seconds;
    [[nodiscard]] bool modelled() const noexcept {
        return static_cast<bool>(collective_seconds) && static_cast<bool>(p2p_seconds);
    }
};

class emulated_world {
public:
    explicit emulated_world(int size, emulated_comm_model model = {});
    ~emulated_world();
    emulated_world(const emulated_world&) = delete;
    emulated_world& operator=(const emulated_world&) = delete;

    [[nodiscard]] int size() const noexcept;
    [[nodiscard]] bool modelled() const noexcept;

    /// Runs body(rank) for every rank, one at a time (see the header comment), and returns when
    /// every rank has returned. Throws the first rank's exception (the others then end with
    /// wlb::runtime_failure), or wlb::runtime_failure naming the waits of a deadlock.
    void run(const std::function<void(int rank)>& body);

    /// Rank `rank`'s clock (persists across run() calls).
    [[nodiscard]] virtual_clock& clock(int rank);

    /// The communicator of world rank `rank` in `group` (its members as world ranks, `rank`
    /// among them); the collectives it completes run their copies on `device`, the rank's
    /// device, which must outlive it.
    [[nodiscard]] std::unique_ptr<device_comm> comm(int rank, const group_desc& group,
                                                    compute_device& device);

    /// Collective over every rank, inside run(): the sum of `value` over the ranks, in rank
    /// order (host numbers; the clocks do not move).
    double host_sum(int rank, double value);
    /// Collective over every rank, inside run(): every clock moves to the latest one (the
    /// barrier that starts a step).
    void clock_barrier(int rank);

    struct state;

private:
    std::shared_ptr<state> m_state;
};

} // namespace wlb::runtime
