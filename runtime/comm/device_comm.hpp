// The communication seam of the device step (issue [cuda-run]): the collectives and transfers of
// one group over a compute device's memory (runtime/device/compute_device.hpp). Three
// implementations:
//
//   host     make_host_device_comm: over a host communicator (the in-process fake in unit tests,
//            MPI), for buffers of the host device (float storage).
//   nccl     runtime/comm/nccl_device_comm.hpp: over the NCCL communicator, device buffers,
//            bf16 on the wire; each operation queued on the group's stream after the device's
//            queued work, and the device's later work queued after it (no host wait).
//   emulated runtime/comm/emulated_world.hpp: every rank of a layout in one process on one
//            device; each collective and transfer is carried out as device copies.
//
// Contract (runtime/comm/communicator.hpp's, over dspans): every member calls a collective in
// the same order with the same count and type; all_gather: recv.count == size() * send.count,
// member i's block at i * send.count; reduce_scatter: send.count == size() * recv.count, member i
// receives the sum of block i; all_reduce sums in place. Sums of bf16 are accumulated in fp32 where
// the implementation can (emulated), NCCL sums in its own order. send is buffered (the caller may
// overwrite `data` at return); a receiver takes a peer's messages of one tag in the order they
// were sent (NCCL ignores tags: a pair's messages must then be received in send order, which the
// 1F1B and interleaved orders do except for pp = 2 with vpp > 1: runtime/train/device_backend).
// Results are in the device stream's order: work queued on the device after a call sees them.
#pragma once

#include "runtime/comm/communicator.hpp"
#include "runtime/device/compute_device.hpp"

#include <memory>

namespace wlb::runtime {

class device_comm {
public:
    device_comm() = default;
    virtual ~device_comm() = default;
    device_comm(const device_comm&) = delete;
    device_comm& operator=(const device_comm&) = delete;

    [[nodiscard]] virtual int rank() const noexcept = 0;
    [[nodiscard]] virtual int size() const noexcept = 0;
    [[nodiscard]] virtual const group_desc& group() const noexcept = 0;
    /// The stream the group's transfers run on (a cudaStream_t; nullptr when they run on the
    /// device's own stream or the host). A capture gives it the group's lane.
    [[nodiscard]] virtual void* stream() const noexcept { return nullptr; }

    virtual void all_gather(dspan send, dspan recv) = 0;
    virtual void reduce_scatter(dspan send, dspan recv) = 0;
    virtual void all_reduce(dspan data) = 0;
    virtual void send(dspan data, int peer, int tag) = 0;
    virtual void recv(dspan data, int peer, int tag) = 0;
    /// Blocks the host until the group's queued transfers have completed, under the watchdog
    /// (NCCL: before the host waits for the device, so a peer that never comes ends the job
    /// instead of hanging it). Implementations that complete every call at once do nothing.
    virtual void wait() {}

protected:
    /// Checks the sizes and types of a collective (internal_error naming the group).
    void check_gather(dspan block, dspan whole, std::string_view op) const;
    void check_peer(int peer, int tag, std::string_view op) const;
};

/// The group communicator `comm` (host memory) as a device_comm for buffers of the host device
/// (runtime/device/host_device.hpp, float storage of bf16 and f32, double of f64). `comm` must
/// outlive the result.
[[nodiscard]] std::unique_ptr<device_comm> make_host_device_comm(communicator& comm);

} // namespace wlb::runtime
