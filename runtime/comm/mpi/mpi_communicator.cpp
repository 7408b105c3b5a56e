// The MPI implementation of the communicator seam (runtime/comm/communicator.hpp): the one file of
// wlbtune that includes <mpi.h>; compiled into wlb::mpi only when WLB_WITH_MPI is on.
//
// Watchdog. Every operation is nonblocking (MPI_Iallgather, MPI_Ireduce_scatter_block,
// MPI_Iallreduce, MPI_Ibarrier, MPI_Isend, MPI_Irecv) and polled with MPI_Test against a
// deadline. Sends are buffered (copied, started, completed later: at barrier() and when the
// communicator is destroyed, under the same watchdog). To name the peers that never arrived at a
// collective, each member, on entering its n-th collective of a group, sends the number n to every
// other member on a duplicate of the group's communicator (the arrival protocol) and posts a
// receive for theirs; a peer whose arrival message is still outstanding at the deadline is missing.
// A point-to-point transfer's missing peer is its partner. On a timeout the rank prints the message
// on stderr and calls MPI_Abort on MPI_COMM_WORLD, which ends every rank of the job (exit code 4,
// "runtime").
#include "base/error.hpp"
#include "runtime/comm/communicator.hpp"
#include "runtime/comm/poll_backoff.hpp"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <list>
#include <mpi.h>
#include <mutex>
#include <sched.h>
#include <thread>

namespace wlb::runtime {

namespace {

/// Initializes MPI on first use and finalizes it when the last communicator is gone (unless
/// someone else initialized it).
class mpi_session {
public:
    mpi_session() {
        int initialized = 0;
        int finalized = 0;
        WLB_MPI_CHECK(MPI_Initialized(&initialized));
        WLB_MPI_CHECK(MPI_Finalized(&finalized));
        if (finalized)
            throw runtime_failure("MPI was finalized when the last communicator of this process "
                                  "was destroyed; create the world communicator once per process "
                                  "and keep it for the whole job");
        if (!initialized) {
            int provided = 0;
            WLB_MPI_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided));
            m_owner = true;
        }
        // Errors come back as codes so WLB_MPI_CHECK can report them.
        WLB_MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    }
    ~mpi_session() {
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (m_owner && !finalized)
            MPI_Finalize();
    }
    mpi_session(const mpi_session&) = delete;
    mpi_session& operator=(const mpi_session&) = delete;

    static std::shared_ptr<mpi_session> get() {
        static std::mutex mutex;
        static std::weak_ptr<mpi_session> current;
        std::lock_guard lock(mutex);
        auto s = current.lock();
        if (!s) {
            s = std::make_shared<mpi_session>();
            current = s;
        }
        return s;
    }

private:
    bool m_owner = false;
};

MPI_Datatype mpi_type(element_type t) {
    return t == element_type::f32 ? MPI_FLOAT : MPI_DOUBLE;
}

int mpi_count(std::size_t count) {
    WLB_EXPECTS(count <= static_cast<std::size_t>(INT_MAX), "{} elements exceed MPI's int count",
                count);
    return static_cast<int>(count);
}

class mpi_communicator final : public communicator {
public:
    mpi_communicator(std::shared_ptr<mpi_session> session, MPI_Comm comm, bool owned,
                     group_desc group, double watchdog_seconds)
        : m_session(std::move(session)), m_comm(comm), m_owned(owned), m_group(std::move(group)),
          m_watchdog_seconds(watchdog_seconds) {
        WLB_MPI_CHECK(MPI_Comm_rank(m_comm, &m_rank));
        WLB_MPI_CHECK(MPI_Comm_size(m_comm, &m_size));
        WLB_EXPECTS(m_size == static_cast<int>(m_group.world_ranks.size()),
                    "MPI communicator of {} ranks for {}", m_size, m_group.describe());
        WLB_MPI_CHECK(MPI_Comm_dup(m_comm, &m_arrival_comm));
    }
    ~mpi_communicator() override {
        try {
            flush_sends(); // under the watchdog: a receiver that never comes aborts the job
        } catch (...) {
            // Destructors never throw; the peers' watchdogs report the stall.
        }
        MPI_Comm_free(&m_arrival_comm);
        if (m_owned)
            MPI_Comm_free(&m_comm);
    }

    int rank() const noexcept override { return m_rank; }
    int size() const noexcept override { return m_size; }
    const group_desc& group() const noexcept override { return m_group; }

    void barrier() override {
        flush_sends();
        collective("barrier", [&](MPI_Request* r) { WLB_MPI_CHECK(MPI_Ibarrier(m_comm, r)); });
    }

    std::unique_ptr<communicator> split(const group_desc& g) override {
        const int me = world_rank();
        auto pos = std::find(g.world_ranks.begin(), g.world_ranks.end(), me);
        WLB_EXPECTS(pos != g.world_ranks.end(), "split: world rank {} is not in its {}", me,
                    g.describe());
        const int color = *std::min_element(g.world_ranks.begin(), g.world_ranks.end());
        const int key = static_cast<int>(pos - g.world_ranks.begin());
        MPI_Comm sub = MPI_COMM_NULL;
        WLB_MPI_CHECK(MPI_Comm_split(m_comm, color, key, &sub));
        return std::make_unique<mpi_communicator>(m_session, sub, true, g, m_watchdog_seconds);
    }

    [[noreturn]] void abort(const std::string& message) override {
        std::fprintf(stderr, "wlbtune: error: %s\n", message.c_str());
        std::fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, static_cast<int>(exit_code::runtime));
        std::abort(); // MPI_Abort does not return; this keeps [[noreturn]] honest
    }

protected:
    void do_all_gather(const void* send, void* recv, std::size_t count,
                       element_type type) override {
        const int n = mpi_count(count);
        collective("all_gather", [&](MPI_Request* r) {
            WLB_MPI_CHECK(
                MPI_Iallgather(send, n, mpi_type(type), recv, n, mpi_type(type), m_comm, r));
        });
    }

    void do_reduce_scatter(const void* send, void* recv, std::size_t count,
                           element_type type) override {
        const int n = mpi_count(count);
        collective("reduce_scatter", [&](MPI_Request* r) {
            WLB_MPI_CHECK(
                MPI_Ireduce_scatter_block(send, recv, n, mpi_type(type), MPI_SUM, m_comm, r));
        });
    }

    void do_all_reduce(void* data, std::size_t count, element_type type) override {
        const int n = mpi_count(count);
        collective("all_reduce", [&](MPI_Request* r) {
            WLB_MPI_CHECK(
                MPI_Iallreduce(MPI_IN_PLACE, data, n, mpi_type(type), MPI_SUM, m_comm, r));
        });
    }

    void do_send(const void* data, std::size_t count, element_type type, int peer,
                 int tag) override {
        // Buffered: copy, start, return. A blocking send could deadlock two pipeline stages that
        // send to each other at once (1F1B's steady state) once messages exceed the eager size.
        progress_sends();
        const auto* p = static_cast<const std::byte*>(data);
        auto& s = m_pending.emplace_back();
        s.data.assign(p, p + count * element_bytes(type));
        s.peer = peer;
        s.tag = tag;
        WLB_MPI_CHECK(MPI_Isend(s.data.data(), mpi_count(count), mpi_type(type), peer, tag, m_comm,
                                &s.request));
    }

    void do_recv(void* data, std::size_t count, element_type type, int peer, int tag) override {
        MPI_Request r = MPI_REQUEST_NULL;
        WLB_MPI_CHECK(MPI_Irecv(data, mpi_count(count), mpi_type(type), peer, tag, m_comm, &r));
        MPI_Status status;
        if (!poll(r, status))
            abort(watchdog_message(fmt::format("recv(tag {})", tag), m_watchdog_seconds, {peer}));
        int received = 0;
        WLB_MPI_CHECK(MPI_Get_count(&status, mpi_type(type), &received));
        WLB_EXPECTS(received == static_cast<int>(count),
                    "recv on {}: member {} sent {} elements, {} expected", m_group.describe(), peer,
                    received, count);
    }

private:
    std::chrono::steady_clock::time_point deadline() const {
        return std::chrono::steady_clock::now() +
               std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                   std::chrono::duration<double>(m_watchdog_seconds));
    }

    struct pending_send {
        std::vector<std::byte> data;
        MPI_Request request = MPI_REQUEST_NULL;
        int peer = 0;
        int tag = 0;
    };

    /// Drops the buffered sends that have completed.
    void progress_sends() {
        for (auto it = m_pending.begin(); it != m_pending.end();) {
            int done = 0;
            WLB_MPI_CHECK(MPI_Test(&it->request, &done, MPI_STATUS_IGNORE));
            it = done ? m_pending.erase(it) : std::next(it);
        }
    }

    /// Completes every buffered send, or aborts naming the receivers that never took theirs.
    void flush_sends() {
        const auto until = deadline();
        for (int polls = 0; !m_pending.empty(); ++polls) {
            progress_sends();
            if (m_pending.empty())
                break;
            if (std::chrono::steady_clock::now() > until) {
                std::vector<int> missing;
                for (const auto& s : m_pending)
                    if (std::find(missing.begin(), missing.end(), s.peer) == missing.end())
                        missing.push_back(s.peer);
                abort(watchdog_message(fmt::format("send(tag {})", m_pending.front().tag),
                                       m_watchdog_seconds, missing));
            }
            poll_backoff(polls);
        }
    }

    /// Polls one request until it completes (true) or the watchdog deadline passes (false).
    bool poll(MPI_Request& r, MPI_Status& status) {
        const auto until = deadline();
        for (int polls = 0;; ++polls) {
            int done = 0;
            WLB_MPI_CHECK(MPI_Test(&r, &done, &status));
            if (done)
                return true;
            if (std::chrono::steady_clock::now() > until)
                return false;
            poll_backoff(polls);
        }
    }

    /// Runs one collective under the arrival protocol and the watchdog.
    template <typename Start>
    void collective(std::string_view op, Start&& start) {
        const std::uint64_t seq = ++m_seq;
        const auto peers = static_cast<std::size_t>(m_size);
        std::vector<std::uint64_t> arrived(peers, 0);
        // requests: [0] the collective, then one receive per peer, then one send per peer.
        std::vector<MPI_Request> requests(1 + 2 * peers, MPI_REQUEST_NULL);
        for (int p = 0; p < m_size; ++p) {
            if (p == m_rank)
                continue;
            const auto i = static_cast<std::size_t>(p);
            WLB_MPI_CHECK(
                MPI_Irecv(&arrived[i], 1, MPI_UINT64_T, p, 0, m_arrival_comm, &requests[1 + i]));
            WLB_MPI_CHECK(
                MPI_Isend(&seq, 1, MPI_UINT64_T, p, 0, m_arrival_comm, &requests[1 + peers + i]));
        }
        start(&requests[0]);
        const auto until = deadline();
        for (int polls = 0;; ++polls) {
            int done = 0;
            WLB_MPI_CHECK(MPI_Testall(static_cast<int>(requests.size()), requests.data(), &done,
                                      MPI_STATUSES_IGNORE));
            if (done)
                break;
            if (std::chrono::steady_clock::now() > until) {
                std::vector<int> missing;
                for (int p = 0; p < m_size; ++p) {
                    auto& r = requests[1 + static_cast<std::size_t>(p)];
                    int got = 1;
                    if (p != m_rank && r != MPI_REQUEST_NULL)
                        WLB_MPI_CHECK(MPI_Test(&r, &got, MPI_STATUS_IGNORE));
                    if (!got)
                        missing.push_back(p);
                }
                abort(watchdog_message(op, m_watchdog_seconds, missing));
            }
            poll_backoff(polls);
        }
        for (int p = 0; p < m_size; ++p)
            WLB_EXPECTS(p == m_rank || arrived[static_cast<std::size_t>(p)] == seq,
                        "{} on {}: member {} is at its collective {} while this rank is at {}: "
                        "the members called collectives in different orders",
                        op, m_group.describe(), p, arrived[static_cast<std::size_t>(p)], seq);
    }

    std::shared_ptr<mpi_session> m_session;
    MPI_Comm m_comm;
    MPI_Comm m_arrival_comm = MPI_COMM_NULL;
    bool m_owned;
    group_desc m_group;
    double m_watchdog_seconds;
    int m_rank = 0;
    int m_size = 1;
    std::uint64_t m_seq = 0;
    std::list<pending_send> m_pending; // stable addresses: MPI reads the buffers until done
};

} // namespace

std::unique_ptr<communicator> make_world_communicator(const world_options& options) {
    WLB_EXPECTS(options.watchdog_seconds > 0, "watchdog timeout {} s", options.watchdog_seconds);
    auto session = mpi_session::get();
    int size = 0;
    WLB_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size));
    const launch_info launch = detect_launch();
    if (launch.launcher != "none" && launch.size != size)
        throw runtime_failure(fmt::format("{} announced {} ranks but MPI_COMM_WORLD has {}",
                                          launch.launcher, launch.size, size));
    group_desc world;
    for (int r = 0; r < size; ++r)
        world.world_ranks.push_back(r);
    return std::make_unique<mpi_communicator>(std::move(session), MPI_COMM_WORLD, false,
                                              std::move(world), options.watchdog_seconds);
}

bool world_communicator_has_mpi() noexcept {
    return true;
}

} // namespace wlb::runtime
