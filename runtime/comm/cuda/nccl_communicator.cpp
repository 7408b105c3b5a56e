// NCCL communicator (runtime/comm/nccl_communicator.hpp): the one file that includes <nccl.h>.
//
// Every NCCL communicator is created non-blocking (ncclConfig_t::blocking = 0), so no NCCL call
// can hang the host: a call that returns ncclInProgress is settled by polling
// ncclCommGetAsyncError under the watchdog deadline, and host waits poll the completion event of
// the communication stream together with ncclCommGetAsyncError (nccl-tests' pattern). On a
// timeout or an error, every live NCCL communicator of the process is aborted (ncclCommAbort),
// which releases their kernels, and the bootstrap communicator ends the job.
#include "runtime/comm/nccl_communicator.hpp"

#include "base/error.hpp"
#include "runtime/comm/poll_backoff.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cuda_runtime_api.h>
#include <mutex>
#include <nccl.h>
#include <sched.h>
#include <thread>
#include <vector>

namespace wlb::runtime {

namespace {

ncclDataType_t nccl_type(device_element t) {
    switch (t) {
    case device_element::f32:
        return ncclFloat32;
    case device_element::f64:
        return ncclFloat64;
    case device_element::bf16:
        return ncclBfloat16;
    }
    return ncclFloat32;
}

device_element device_element_of(element_type t) {
    return t == element_type::f32 ? device_element::f32 : device_element::f64;
}

/// What every communicator split from one world shares: the bootstrap that ends the job and the
/// live NCCL communicators to abort first.
struct nccl_session {
    communicator* bootstrap = nullptr;
    int device = 0;
    double watchdog_seconds = default_watchdog_seconds;
    std::mutex mutex;
    std::vector<ncclComm_t> live;
    std::string abort_message; ///< set once the communicators were aborted

    void add(ncclComm_t c) {
        std::lock_guard lock(mutex);
        live.push_back(c);
    }
    std::size_t live_count() {
        std::lock_guard lock(mutex);
        return live.size();
    }
    /// Removes `c` from the live list; false when it is no longer live (aborted).
    bool take(ncclComm_t c) {
        std::lock_guard lock(mutex);
        auto it = std::find(live.begin(), live.end(), c);
        if (it == live.end())
            return false;
        live.erase(it);
        return true;
    }
    /// Throws when the communicators were aborted: no NCCL call may touch them again.
    void check_live() {
        std::lock_guard lock(mutex);
        if (!abort_message.empty())
            throw runtime_failure("the NCCL communicators of this rank were aborted: " +
                                  abort_message);
    }
    /// Aborts every live communicator (their pending kernels return).
    void abort_all(const std::string& message) noexcept {
        std::lock_guard lock(mutex);
        for (ncclComm_t c : live)
            ncclCommAbort(c);
        live.clear();
        if (abort_message.empty())
            abort_message = message;
    }
    [[noreturn]] void end_job(const std::string& message) {
        abort_all(message);
        if (bootstrap != nullptr)
            bootstrap->abort(message);
        std::fprintf(stderr, "wlbtune: error: %s\n", message.c_str());
        std::fflush(stderr);
        std::abort();
    }
    std::chrono::steady_clock::time_point deadline() const {
        return std::chrono::steady_clock::now() +
               std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                   std::chrono::duration<double>(watchdog_seconds));
    }
};

ncclConfig_t nonblocking_config() {
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    return config;
}

/// Polls a non-blocking communicator until its pending call settles; returns the final state
/// (ncclSuccess or an error) or ncclInProgress when the deadline passed.
ncclResult_t settle(ncclComm_t comm, std::chrono::steady_clock::time_point until) {
    for (int polls = 0;; ++polls) {
        ncclResult_t state = ncclSuccess;
        const ncclResult_t query = ncclCommGetAsyncError(comm, &state);
        if (query != ncclSuccess)
            return query;
        if (state != ncclInProgress)
            return state;
        if (std::chrono::steady_clock::now() > until)
            return ncclInProgress;
        poll_backoff(polls);
    }
}

class nccl_comm_impl final : public nccl_communicator {
public:
    /// Takes ownership of `comm`. Checks and resources come first and the registration as live
    /// last: when a check fails, the communicator is aborted, its resources freed, and it was
    /// never listed (the destructor does not run for an object whose constructor threw, so a
    /// listed one would stay live forever, and be aborted under a later owner).
    nccl_comm_impl(std::shared_ptr<nccl_session> session, ncclComm_t comm, group_desc group)
        : m_session(std::move(session)), m_comm(comm), m_group(std::move(group)) {
        try {
            int rank = 0, size = 0;
            WLB_NCCL_CHECK(ncclCommUserRank(m_comm, &rank));
            WLB_NCCL_CHECK(ncclCommCount(m_comm, &size));
            WLB_EXPECTS(size == static_cast<int>(m_group.world_ranks.size()),
                        "NCCL communicator of {} ranks for {}", size, m_group.describe());
            m_rank = rank;
            m_size = size;
            WLB_CUDA_CHECK(cudaStreamCreateWithFlags(&m_stream, cudaStreamNonBlocking));
            WLB_CUDA_CHECK(cudaEventCreateWithFlags(&m_ready, cudaEventDisableTiming));
            WLB_CUDA_CHECK(cudaEventCreateWithFlags(&m_done, cudaEventDisableTiming));
            WLB_CUDA_CHECK(cudaMalloc(&m_scratch, sizeof(float)));
        } catch (...) {
            ncclCommAbort(m_comm);
            release_cuda_resources();
            throw;
        }
        m_session->add(m_comm);
    }

    ~nccl_comm_impl() override {
        try {
            flush_sends(true); // under the watchdog: a receiver that never comes ends the job
            wait();
        } catch (...) {
            // Destructors never throw; an abort already released the communicator.
        }
        if (m_session->take(m_comm)) {
            const ncclResult_t fin = ncclCommFinalize(m_comm);
            if ((fin == ncclSuccess || fin == ncclInProgress) &&
                settle(m_comm, m_session->deadline()) == ncclSuccess)
                ncclCommDestroy(m_comm);
            else
                ncclCommAbort(m_comm);
        }
        release_cuda_resources();
    }

    int rank() const noexcept override { return m_rank; }
    int size() const noexcept override { return m_size; }
    const group_desc& group() const noexcept override { return m_group; }

    void bind_compute_stream(stream_t compute) override { m_compute = compute; }
    stream_t compute_stream() const noexcept override { return m_compute; }
    stream_t comm_stream() const noexcept override { return m_stream; }
    int device() const noexcept override { return m_session->device; }
    std::size_t live_communicators() const override { return m_session->live_count(); }

    void all_gather_async(const void* send, void* recv, std::size_t count,
                          device_element type) override {
        enqueue("all_gather", [&] {
            return ncclAllGather(send, recv, count, nccl_type(type), m_comm, m_stream);
        });
    }
    void reduce_scatter_async(const void* send, void* recv, std::size_t count,
                              device_element type) override {
        enqueue("reduce_scatter", [&] {
            return ncclReduceScatter(send, recv, count, nccl_type(type), ncclSum, m_comm, m_stream);
        });
    }
    void all_reduce_async(void* data, std::size_t count, device_element type) override {
        enqueue("all_reduce", [&] {
            return ncclAllReduce(data, data, count, nccl_type(type), ncclSum, m_comm, m_stream);
        });
    }

    void join(stream_t compute) override {
        WLB_CUDA_CHECK(cudaEventRecord(m_done, m_stream));
        WLB_CUDA_CHECK(cudaStreamWaitEvent(compute, m_done, 0));
    }

    void wait() override {
        m_session->check_live();
        WLB_CUDA_CHECK(cudaEventRecord(m_done, m_stream));
        const auto until = m_session->deadline();
        for (int polls = 0;; ++polls) {
            const cudaError_t query = cudaEventQuery(m_done);
            if (query == cudaSuccess)
                return;
            if (query != cudaErrorNotReady)
                WLB_CUDA_CHECK(query);
            check_async(m_last_op);
            if (std::chrono::steady_clock::now() > until)
                abort(timeout_message(m_last_op));
            poll_backoff(polls);
        }
    }

    void barrier() override {
        flush_sends(false);
        enqueue("barrier", [&] {
            return ncclAllReduce(m_scratch, m_scratch, 1, ncclFloat32, ncclSum, m_comm, m_stream);
        });
        wait();
    }

    std::unique_ptr<communicator> split(const group_desc& g) override {
        flush_sends(true);
        wait();
        const int me = world_rank();
        auto pos = std::find(g.world_ranks.begin(), g.world_ranks.end(), me);
        WLB_EXPECTS(pos != g.world_ranks.end(), "split: world rank {} is not in its {}", me,
                    g.describe());
        const int color = *std::min_element(g.world_ranks.begin(), g.world_ranks.end());
        const int key = static_cast<int>(pos - g.world_ranks.begin());
        ncclConfig_t config = nonblocking_config();
        ncclComm_t sub = nullptr;
        const ncclResult_t started = ncclCommSplit(m_comm, color, key, &sub, &config);
        if (started != ncclSuccess && started != ncclInProgress)
            abort(error_message("ncclCommSplit", started));
        const auto until = m_session->deadline();
        const ncclResult_t parent = settle(m_comm, until);
        const ncclResult_t child = sub != nullptr ? settle(sub, until) : ncclSuccess;
        if (parent == ncclInProgress || child == ncclInProgress)
            abort(timeout_message("split into " + g.describe()));
        if (parent != ncclSuccess || child != ncclSuccess)
            abort(error_message("ncclCommSplit", parent != ncclSuccess ? parent : child));
        WLB_EXPECTS(sub != nullptr, "ncclCommSplit gave no communicator for {}", g.describe());
        return std::make_unique<nccl_comm_impl>(m_session, sub, g);
    }

    [[noreturn]] void abort(const std::string& message) override { m_session->end_job(message); }

protected:
    void do_all_gather(const void* send, void* recv, std::size_t count,
                       element_type type) override {
        all_gather_async(send, recv, count, device_element_of(type));
        wait();
    }
    void do_reduce_scatter(const void* send, void* recv, std::size_t count,
                           element_type type) override {
        reduce_scatter_async(send, recv, count, device_element_of(type));
        wait();
    }
    void do_all_reduce(void* data, std::size_t count, element_type type) override {
        all_reduce_async(data, count, device_element_of(type));
        wait();
    }

    void do_send(const void* data, std::size_t count, element_type type, int peer,
                 int /*tag*/) override {
        send_device(data, count, device_element_of(type), peer);
    }

    void do_recv(void* data, std::size_t count, element_type type, int peer, int /*tag*/) override {
        recv_device(data, count, device_element_of(type), peer);
    }

public:
    void send_device(const void* data, std::size_t count, device_element type, int peer) override {
        m_session->check_live();
        const std::size_t bytes = count * device_element_bytes(type);
        after_compute();
        pending_send s;
        s.count = count;
        s.type = type;
        s.peer = peer;
        WLB_CUDA_CHECK(cudaMallocAsync(&s.staging, bytes > 0 ? bytes : 1, m_stream));
        WLB_CUDA_CHECK(cudaMemcpyAsync(s.staging, data, bytes, cudaMemcpyDeviceToDevice, m_stream));
        m_pending.push_back(s);
        join(m_compute); // later compute may overwrite `data` only after the copy
    }

    void recv_device(void* data, std::size_t count, device_element type, int peer) override {
        enqueue("recv", [&] {
            ncclResult_t r = ncclGroupStart();
            if (r != ncclSuccess)
                return r;
            for (const auto& s : m_pending) {
                r = ncclSend(s.staging, s.count, nccl_type(s.type), s.peer, m_comm, m_stream);
                if (r != ncclSuccess && r != ncclInProgress)
                    break;
            }
            const ncclResult_t rr = ncclRecv(data, count, nccl_type(type), peer, m_comm, m_stream);
            const ncclResult_t end = ncclGroupEnd();
            if (r != ncclSuccess && r != ncclInProgress)
                return r;
            return rr != ncclSuccess && rr != ncclInProgress ? rr : end;
        });
        release_staging();
        wait();
    }

private:
    struct pending_send {
        void* staging = nullptr;
        std::size_t count = 0;
        device_element type = device_element::f32;
        int peer = 0;
    };

    /// Frees the scratch, events and stream (those created so far; never throws).
    void release_cuda_resources() noexcept {
        if (m_scratch != nullptr)
            cudaFree(m_scratch);
        if (m_ready != nullptr)
            cudaEventDestroy(m_ready);
        if (m_done != nullptr)
            cudaEventDestroy(m_done);
        if (m_stream != nullptr)
            cudaStreamDestroy(m_stream);
        m_scratch = nullptr;
        m_ready = m_done = nullptr;
        m_stream = nullptr;
    }

    /// The communication stream waits for the work queued so far on the compute stream.
    void after_compute() {
        WLB_CUDA_CHECK(cudaEventRecord(m_ready, m_compute));
        WLB_CUDA_CHECK(cudaStreamWaitEvent(m_stream, m_ready, 0));
    }

    /// Issues one NCCL call (or group) after the compute stream's queued work, settles it.
    template <typename Call>
    void enqueue(std::string_view op, Call&& call) {
        m_session->check_live();
        if (op != "recv")
            flush_sends(false);
        after_compute();
        m_last_op = std::string(op);
        const ncclResult_t r = call();
        if (r != ncclSuccess && r != ncclInProgress)
            abort(error_message(op, r));
        const ncclResult_t state = settle(m_comm, m_session->deadline());
        if (state == ncclInProgress)
            abort(timeout_message(op));
        if (state != ncclSuccess)
            abort(error_message(op, state));
    }

    /// Posts the pending sends (one NCCL group); with `complete`, waits for them.
    void flush_sends(bool complete) {
        if (m_pending.empty())
            return;
        m_session->check_live();
        m_last_op = "send";
        after_compute();
        ncclResult_t r = ncclGroupStart();
        for (const auto& s : m_pending) {
            if (r != ncclSuccess && r != ncclInProgress)
                break;
            r = ncclSend(s.staging, s.count, nccl_type(s.type), s.peer, m_comm, m_stream);
        }
        const ncclResult_t end = ncclGroupEnd();
        if (r == ncclSuccess || r == ncclInProgress)
            r = end;
        if (r != ncclSuccess && r != ncclInProgress)
            abort(error_message("send", r));
        const ncclResult_t state = settle(m_comm, m_session->deadline());
        if (state == ncclInProgress)
            abort(timeout_message("send"));
        if (state != ncclSuccess)
            abort(error_message("send", state));
        release_staging();
        if (complete)
            wait();
    }

    /// Frees the staging buffers of posted sends, in stream order after the sends.
    void release_staging() {
        for (const auto& s : m_pending)
            WLB_CUDA_CHECK(cudaFreeAsync(s.staging, m_stream));
        m_pending.clear();
    }

    void check_async(const std::string& op) {
        ncclResult_t state = ncclSuccess;
        WLB_NCCL_CHECK(ncclCommGetAsyncError(m_comm, &state));
        if (state != ncclSuccess && state != ncclInProgress)
            abort(error_message(op, state));
    }

    std::string timeout_message(std::string_view op) const {
        return fmt::format("watchdog: {} on {} did not complete within {:g} s on world rank {} "
                           "(NCCL); NCCL cannot name the missing peers, their own watchdogs "
                           "report where they wait; every NCCL communicator of this rank was "
                           "aborted",
                           op, m_group.describe(), m_session->watchdog_seconds, world_rank());
    }

    std::string error_message(std::string_view op, ncclResult_t r) const {
        const char* detail = ncclGetLastError(m_comm);
        return fmt::format("NCCL error in {} on {} on world rank {}: {} ({})", op,
                           m_group.describe(), world_rank(), ncclGetErrorString(r),
                           detail != nullptr && *detail != '\0' ? detail : "no detail");
    }

    std::shared_ptr<nccl_session> m_session;
    ncclComm_t m_comm;
    group_desc m_group;
    int m_rank = 0;
    int m_size = 1;
    stream_t m_stream = nullptr;
    stream_t m_compute = nullptr;
    cudaEvent_t m_ready = nullptr;
    cudaEvent_t m_done = nullptr;
    float* m_scratch = nullptr;
    std::string m_last_op = "wait"; // the operation a host wait reports
    std::vector<pending_send> m_pending;
};

bool env_int(const char* name, int& value) {
    const char* text = std::getenv(name);
    if (text == nullptr || *text == '\0')
        return false;
    char* end = nullptr;
    const long v = std::strtol(text, &end, 10);
    if (end == text || *end != '\0' || v < 0 || v > 1 << 20)
        return false;
    value = static_cast<int>(v);
    return true;
}

int choose_device(const communicator& bootstrap, const nccl_options& options) {
    int count = 0;
    const cudaError_t status = cudaGetDeviceCount(&count);
    if (status != cudaSuccess || count == 0) {
        cudaGetLastError();
        throw runtime_failure(fmt::format(
            "the NCCL communicator needs a CUDA device on every rank, world rank {} has none ({})",
            bootstrap.world_rank(),
            status != cudaSuccess ? cudaGetErrorString(status) : "0 devices"));
    }
    if (options.device >= 0) {
        if (options.device >= count)
            throw input_error(fmt::format("CUDA device {} requested, world rank {} sees {}",
                                          options.device, bootstrap.world_rank(), count));
        return options.device;
    }
    int local = 0;
    for (const char* name :
         {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID", "LOCAL_RANK"})
        if (env_int(name, local))
            return local % count;
    return bootstrap.rank() % count;
}

} // namespace

std::unique_ptr<nccl_communicator> make_nccl_world(communicator& bootstrap,
                                                   const nccl_options& options) {
    WLB_EXPECTS(options.watchdog_seconds > 0, "watchdog timeout {} s", options.watchdog_seconds);
    auto session = std::make_shared<nccl_session>();
    session->bootstrap = &bootstrap;
    session->watchdog_seconds = options.watchdog_seconds;
    session->device = choose_device(bootstrap, options);
    WLB_CUDA_CHECK(cudaSetDevice(session->device));

    // The unique id travels through the bootstrap's all_gather as one double per byte (exact
    // small integers, whatever the transport does with floating-point bit patterns).
    ncclUniqueId id{};
    if (bootstrap.rank() == 0)
        WLB_NCCL_CHECK(ncclGetUniqueId(&id));
    constexpr std::size_t id_bytes = sizeof(ncclUniqueId);
    std::array<double, id_bytes> mine{};
    const auto* raw = reinterpret_cast<const unsigned char*>(&id);
    for (std::size_t i = 0; i < id_bytes; ++i)
        mine[i] = raw[i];
    std::vector<double> all(id_bytes * static_cast<std::size_t>(bootstrap.size()));
    bootstrap.all_gather<double>(mine, all);
    auto* out = reinterpret_cast<unsigned char*>(&id);
    for (std::size_t i = 0; i < id_bytes; ++i)
        out[i] = static_cast<unsigned char>(all[i]);

    ncclConfig_t config = nonblocking_config();
    ncclComm_t comm = nullptr;
    const ncclResult_t started =
        ncclCommInitRankConfig(&comm, bootstrap.size(), id, bootstrap.rank(), &config);
    const auto fail = [&](const std::string& message) {
        if (comm != nullptr)
            ncclCommAbort(comm);
        bootstrap.abort(message);
    };
    if (started != ncclSuccess && started != ncclInProgress)
        fail(fmt::format("ncclCommInitRankConfig failed on world rank {}: {}",
                         bootstrap.world_rank(), ncclGetErrorString(started)));
    const ncclResult_t state = settle(comm, session->deadline());
    if (state == ncclInProgress)
        fail(fmt::format("watchdog: NCCL initialization of {} did not complete within {:g} s on "
                         "world rank {}",
                         bootstrap.group().describe(), options.watchdog_seconds,
                         bootstrap.world_rank()));
    if (state != ncclSuccess)
        fail(fmt::format("NCCL initialization failed on world rank {}: {}", bootstrap.world_rank(),
                         ncclGetErrorString(state)));
    return std::make_unique<nccl_comm_impl>(std::move(session), comm, bootstrap.group());
}

bool nccl_available() noexcept {
    return true;
}

} // namespace wlb::runtime
