// The communicator seam (design.md section 3): every collective and point-to-point transfer of
// the real executors goes through this interface, so MPI (runtime/comm/mpi/, target wlb::mpi), NCCL
// later, and the in-process fake for unit tests (runtime/comm/fake_communicator.hpp) are
// interchangeable, and no code outside those files names MPI.
//
// Contract shared by every implementation:
// - Buffers are contiguous float or double spans. Reductions are sums.
// - A collective is called by every member of the group, in the same order on every member,
//   with the same element count. all_gather: recv.size() == size() * send.size(), member i's
//   block at offset i * send.size(). reduce_scatter: send.size() == size() * recv.size(), member
//   i receives the sum over members of block i. all_reduce sums in place.
// - send/recv match by (peer, tag) in program order; tags are in [0, max_tag].
// - Watchdog: every collective, send or receive that does not complete within timeout_seconds
//   calls abort() with a message naming the operation, the group (kind and world ranks) and the
//   peers that did not arrive. The MPI implementation prints it and aborts every rank of the
//   job; the fake marks the whole fake world aborted, so every waiting thread throws
//   wlb::runtime_failure with the message instead of hanging.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace wlb::runtime {

class layout;

/// Which group a communicator spans: "world", "tp", "cp", "pp", "dp" (or a test's own name) and
/// the world ranks of its members; member i of the group is world rank world_ranks[i].
struct group_desc {
    std::string kind = "world";
    std::vector<int> world_ranks;
    /// "cp group [2, 3]".
    [[nodiscard]] std::string describe() const;
};

enum class element_type { f32, f64 };

/// Bytes of one element.
[[nodiscard]] constexpr std::size_t element_bytes(element_type t) noexcept {
    return t == element_type::f32 ? 4 : 8;
}

template <typename T>
[[nodiscard]] constexpr element_type element_type_of() noexcept;
template <>
[[nodiscard]] constexpr element_type element_type_of<float>() noexcept {
    return element_type::f32;
}
template <>
[[nodiscard]] constexpr element_type element_type_of<double>() noexcept {
    return element_type::f64;
}

/// Default watchdog timeout when none is configured.
inline constexpr double default_watchdog_seconds = 60.0;
/// Largest tag a caller may use for send/recv (MPI guarantees at least 32767).
inline constexpr int max_tag = 32767;

class communicator {
public:
    communicator() = default;
    virtual ~communicator() = default;
    communicator(const communicator&) = delete;
    communicator& operator=(const communicator&) = delete;

    /// This process's (or fake thread's) index in the group, in [0, size()).
    [[nodiscard]] virtual int rank() const noexcept = 0;
    [[nodiscard]] virtual int size() const noexcept = 0;
    [[nodiscard]] virtual const group_desc& group() const noexcept = 0;
    /// World rank of the caller.
    [[nodiscard]] int world_rank() const noexcept { return group().world_ranks[rank()]; }

    template <typename T>
    void all_gather(std::span<const T> send, std::span<T> recv) {
        check_gather(send.size(), recv.size(), "all_gather");
        do_all_gather(send.data(), recv.data(), send.size(), element_type_of<T>());
    }
    template <typename T>
    void reduce_scatter(std::span<const T> send, std::span<T> recv) {
        check_gather(recv.size(), send.size(), "reduce_scatter");
        do_reduce_scatter(send.data(), recv.data(), recv.size(), element_type_of<T>());
    }
    template <typename T>
    void all_reduce(std::span<T> data) {
        do_all_reduce(data.data(), data.size(), element_type_of<T>());
    }
    /// Sends `data` to group member `peer` (not the caller). Buffered: returns once the data is
    /// copied, never waiting for the receiver, so two ranks may send to each other before either
    /// receives (pipeline stages do). Pending sends complete at barrier() and at destruction,
    /// under the watchdog.
    template <typename T>
    void send(std::span<const T> data, int peer, int tag) {
        check_peer(peer, tag, "send");
        do_send(data.data(), data.size(), element_type_of<T>(), peer, tag);
    }
    /// Receives exactly data.size() elements from group member `peer`.
    template <typename T>
    void recv(std::span<T> data, int peer, int tag) {
        check_peer(peer, tag, "recv");
        do_recv(data.data(), data.size(), element_type_of<T>(), peer, tag);
    }
    virtual void barrier() = 0;

    /// Collective over this communicator: every member calls it once with the group it belongs
    /// to; the groups (given as world ranks, every member a member of this communicator)
    /// partition this communicator's members. Returns the caller's sub-communicator, whose
    /// member i is group.world_ranks[i]. The watchdog timeout is inherited.
    [[nodiscard]] virtual std::unique_ptr<communicator> split(const group_desc& group) = 0;

    /// Prints or records `message` and ends the job on every rank (see the header comment).
    [[noreturn]] virtual void abort(const std::string& message) = 0;

protected:
    virtual void do_all_gather(const void* send, void* recv, std::size_t count,
                               element_type type) = 0;
    /// `count` is the per-member block (the size of recv).
    virtual void do_reduce_scatter(const void* send, void* recv, std::size_t count,
                                   element_type type) = 0;
    virtual void do_all_reduce(void* data, std::size_t count, element_type type) = 0;
    virtual void do_send(const void* data, std::size_t count, element_type type, int peer,
                         int tag) = 0;
    virtual void do_recv(void* data, std::size_t count, element_type type, int peer, int tag) = 0;

    /// "watchdog: OP on GROUP did not complete within S s on world rank R; missing peers:
    /// [..]" with the missing peers as world ranks.
    [[nodiscard]] std::string watchdog_message(std::string_view op, double timeout_seconds,
                                               const std::vector<int>& missing_members) const;

private:
    void check_gather(std::size_t block, std::size_t whole, std::string_view op) const;
    void check_peer(int peer, int tag, std::string_view op) const;
};

/// Collective over `c`: every member's non-negative 64-bit value (clock times, counts), exact
/// (the seam moves floating point: each value travels as two doubles of 32 bits).
[[nodiscard]] std::vector<std::int64_t> all_gather_int64(communicator& c, std::int64_t value);

/// A rank's communicators for its four groups of a layout.
struct group_communicators {
    std::unique_ptr<communicator> tp;
    std::unique_ptr<communicator> cp;
    std::unique_ptr<communicator> pp;
    std::unique_ptr<communicator> dp;
    [[nodiscard]] communicator& of(int axis_index) const;
};

/// Collective over `world`: splits it into the caller's TP, CP, PP and DP groups of `l` (the
/// member order of each group is layout::group_of's, so member i of the CP group is CP rank i).
/// Throws wlb::input_error, before any communication, when the layout's world size differs from
/// world.size().
[[nodiscard]] group_communicators make_group_communicators(communicator& world, const layout& l);

/// How the job was launched, read from the environment mpirun (Open MPI, MPICH/PMI, PMIx) or
/// srun set. Used to refuse a mismatched layout early and to tell a single process from a job.
struct launch_info {
    int rank = 0;
    int size = 1;
    std::string launcher = "none"; ///< "openmpi", "pmix", "pmi", "slurm" or "none"
};
[[nodiscard]] launch_info detect_launch();

/// Options for the world communicator of a real backend.
struct world_options {
    double watchdog_seconds = default_watchdog_seconds;
};

/// The job's world communicator. With MPI built in (wlb::mpi), initializes MPI (once) from the
/// launcher's environment and returns MPI_COMM_WORLD's communicator; MPI is finalized when the
/// last communicator from it is destroyed. Without MPI, returns a single-rank communicator when
/// the process was not started by a launcher with more than one rank, and throws
/// wlb::runtime_failure naming the fix otherwise. Defined in the wlb::mpi target.
[[nodiscard]] std::unique_ptr<communicator> make_world_communicator(const world_options& options);

/// Whether make_world_communicator can start a multi-rank job (wlb::mpi built with MPI).
[[nodiscard]] bool world_communicator_has_mpi() noexcept;

} // namespace wlb::runtime
