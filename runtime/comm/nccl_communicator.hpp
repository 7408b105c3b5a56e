// The NCCL implementation of the communicator seam (runtime/comm/communicator.hpp) for the CUDA
// backend. Host header: no CUDA or NCCL header; defined in runtime/comm/cuda/nccl_communicator.cpp
// (target wlb::cuda) when the build has CUDA, and by runtime/comm/no_cuda/ otherwise, where
// make_nccl_world throws wlb::runtime_failure naming the fix.
//
// Buffers are DEVICE pointers (the spans of the base interface are never dereferenced on the
// host). Contract beyond the base interface's:
// - Streams. Each communicator owns a communication stream. Every operation first waits (on the
//   device, through an event) for the work queued so far on the bound compute stream (default:
//   the legacy default stream), so its inputs are ready; the synchronous operations of the base
//   interface then block the host until they complete. The *_async forms return at once, so
//   compute queued afterwards overlaps the transfer; join(compute) makes a compute stream wait
//   for them without blocking the host, wait() blocks the host.
// - Watchdog. Every host wait polls the stream's completion event and ncclCommGetAsyncError
//   against watchdog_seconds; on a timeout or an asynchronous NCCL error it aborts every NCCL
//   communicator of the process (ncclCommAbort) and then calls the bootstrap communicator's
//   abort() with a message naming the operation, the group and the rank (MPI: the whole job
//   ends; the in-process fake: every rank throws wlb::runtime_failure). NCCL cannot tell which
//   peer is missing; the peers' own watchdogs report where they wait. Initialization and splits
//   are non-blocking NCCL calls polled the same way, so a peer that never arrives cannot hang them.
// - send/recv. NCCL matches the messages of a pair of ranks in order, without tags: a receiver
//   must take a peer's messages in the order they were sent (tags are accepted and checked for
//   range only). send() copies the data into a staging buffer on the communication stream and
//   returns (the caller may overwrite its buffer: later compute work is ordered after the copy);
//   the transfer is posted together with the caller's next recv() in one NCCL group, so two ranks
//   may send to each other before receiving. Pending sends are posted before any collective and
//   completed at barrier() and destruction: a rank that sends, then enters a collective its
//   receiver reaches only after receiving, deadlocks, and the watchdog ends the job.
#pragma once

#include "runtime/comm/communicator.hpp"

#include <cstddef>
#include <memory>

struct CUstream_st;

namespace wlb::runtime {

/// Element types on the device: the base interface's f32/f64 and bf16 activations.
enum class device_element { f32, f64, bf16 };
[[nodiscard]] constexpr std::size_t device_element_bytes(device_element t) noexcept {
    return t == device_element::f64 ? 8 : (t == device_element::f32 ? 4 : 2);
}

struct nccl_options {
    double watchdog_seconds = default_watchdog_seconds;
    /// CUDA device of this rank; -1: the node-local rank (from the launcher's environment, else
    /// the bootstrap rank) modulo the visible devices.
    int device = -1;
};

class nccl_communicator : public communicator {
public:
    using stream_t = CUstream_st*;

    /// The stream whose queued work operations wait for (nullptr: the legacy default stream).
    virtual void bind_compute_stream(stream_t compute) = 0;
    [[nodiscard]] virtual stream_t compute_stream() const noexcept = 0;
    /// This communicator's own stream, where its transfers run.
    [[nodiscard]] virtual stream_t comm_stream() const noexcept = 0;
    /// The CUDA device of this communicator.
    [[nodiscard]] virtual int device() const noexcept = 0;
    /// NCCL communicators of this world (the world and every split of it) that are live:
    /// constructed, neither destroyed nor aborted. A diagnostic (and what the GPU tests check
    /// after a failed split).
    [[nodiscard]] virtual std::size_t live_communicators() const = 0;

    /// Queue a collective (count = elements per member, as the base interface) and return.
    virtual void all_gather_async(const void* send, void* recv, std::size_t count,
                                  device_element type) = 0;
    virtual void reduce_scatter_async(const void* send, void* recv, std::size_t count,
                                      device_element type) = 0;
    virtual void all_reduce_async(void* data, std::size_t count, device_element type) = 0;
    /// send() and recv() of `count` elements of any device type (bf16 activations between
    /// pipeline stages), with the base interface's buffering and ordering.
    virtual void send_device(const void* data, std::size_t count, device_element type,
                             int peer) = 0;
    virtual void recv_device(void* data, std::size_t count, device_element type, int peer) = 0;
    /// Makes `compute` wait for everything queued on this communicator so far (no host block).
    virtual void join(stream_t compute) = 0;
    /// Blocks the host until everything queued on this communicator has completed, under the
    /// watchdog.
    virtual void wait() = 0;
};

/// Collective over `bootstrap` (the MPI world, or any communicator of the same processes, which
/// must outlive the result): member 0 creates the NCCL unique id, an all_gather over the
/// bootstrap distributes it, and every member joins the NCCL communicator on its device. The
/// result's group is the bootstrap's (same members, same order). Makes the device current for
/// the calling thread, which must stay on it.
[[nodiscard]] std::unique_ptr<nccl_communicator> make_nccl_world(communicator& bootstrap,
                                                                 const nccl_options& options);

/// Whether this build has NCCL (a CUDA build); false means make_nccl_world throws.
[[nodiscard]] bool nccl_available() noexcept;

} // namespace wlb::runtime
