// libwlbtune_inject.so: the injection library `wlbtune profile` puts into every process of a job
// (design.md: profile). The CUDA driver loads it through CUDA_INJECTION64_PATH and calls
// InitializeInjection at cuInit; the NVTX library loads it through NVTX_INJECTION64_PATH and
// calls InitializeInjectionNvtx2 at the process's first NVTX call. Everything else is host code
// in profiler/capture/inject/ (process_recorder: records to trace, windows, steps); this file is
// the edge: CUPTI (loaded at run time, cupti_api.hpp), NVTX callbacks, the control thread,
// exit and signals.
//
// It never hurts the job: every entry point catches everything; a failure (CUPTI refusing, a
// full disk, an unwritable directory) warns once on stderr and switches capture off; CUPTI's
// buffers come from a bounded pool; the control file is polled on the library's own thread,
// never on the training thread; a forked child (a data-loader worker) does nothing.
//
// Threads: the job's threads run the NVTX callbacks (a stack push, and for ranges that mean
// something to the analysis a CUPTI external correlation push) and the CUPTI callbacks for
// cudaProfilerStart/Stop; CUPTI's own threads deliver buffers; the control thread opens and
// closes windows, polls the control file, converts and writes the files.
#include "profiler/capture/buffer_pool.hpp"
#include "profiler/capture/cuda/cupti_records.hpp"
#include "profiler/capture/inject/control_file.hpp"
#include "profiler/capture/inject/cuda/cupti_api.hpp"
#include "profiler/capture/inject/inject_config.hpp"
#include "profiler/capture/inject/launcher_env.hpp"
#include "profiler/capture/inject/private_files.hpp"
#include "profiler/capture/inject/process_capture.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <cupti.h>
#include <deque>
#include <fcntl.h>
#include <fstream>
#include <memory>
#include <mutex>
#include <nvtx3/nvToolsExt.h>
#include <optional>
#include <poll.h>
#include <pthread.h>
#include <set>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <thread>
#include <unistd.h>

#define WLB_INJECT_EXPORT extern "C" __attribute__((visibility("default")))

namespace wlb::profiler {
namespace {

/// CUPTI's clock on Linux (cuptiActivityRegisterTimestampCallback: CLOCK_REALTIME), so ranges
/// taken before CUPTI is loaded and the records it delivers share one time line.
std::int64_t now_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

std::uint64_t thread_key() {
    return static_cast<std::uint64_t>(::syscall(SYS_gettid));
}

std::vector<std::string> own_command() {
    std::vector<std::string> args;
    std::ifstream in("/proc/self/cmdline", std::ios::binary);
    std::string arg;
    while (std::getline(in, arg, '\0'))
        args.push_back(arg);
    return args;
}

std::string host_name() {
    char buffer[256] = {};
    if (::gethostname(buffer, sizeof buffer - 1) != 0)
        return "?";
    return buffer;
}

// Messages on the control thread's wake pipe.
constexpr char wake_quit = 'q';
constexpr char wake_api_start = 'S';
constexpr char wake_api_stop = 'T';
constexpr char wake_flush = 'F';     // a signal the job survives: write what there is
constexpr char wake_flush_end = 'K'; // a signal that ends the job: close the window and write

class injector {
public:
    static injector& get() {
        static auto* the = new injector; // never destroyed: callbacks may come during exit
        return *the;
    }

    // ---- entry points -----------------------------------------------------------------------
    void on_cuda_init() {
        std::lock_guard lock(m_mutex);
        if (m_cuda_started || m_forked)
            return;
        m_cuda_started = true;
        if (!configure_locked())
            return;
        std::string problem;
        if (!load_cupti(m_config.cupti_library, m_cupti, problem)) {
            disable_locked(problem);
            write_locked();
            return;
        }
        m_recorder->set_cupti(m_cupti.describe());
        m_pool = std::make_unique<buffer_pool>(m_config.buffer_bytes, m_config.max_buffers, 8);
        if (const auto r = m_cupti.register_callbacks(&buffer_requested, &buffer_completed);
            r != CUPTI_SUCCESS) {
            disable_locked("CUPTI refused its buffer callbacks: " + m_cupti.result_text(r));
            write_locked();
            return;
        }
        m_cupti_ready = true;
        if (m_config.mode == capture_mode::full) {
            open_window_locked("start", m_config.steps, m_config.skip_steps, m_config.seconds);
        } else if (m_config.mode == capture_mode::profiler_api) {
            subscribe_locked("cudaProfilerStart/Stop");
        }
        start_control_thread_locked();
        std::atexit(&at_exit);
        ::pthread_atfork(nullptr, nullptr, &in_child);
        install_signal_handlers_locked();
    }

    bool on_nvtx_init(NvtxGetExportTableFunc_t get_table) {
        {
            std::lock_guard lock(m_mutex);
            if (m_forked || !configure_locked() || !m_config.nvtx)
                return false;
        }
        if (get_table == nullptr)
            return false;
        const auto* callbacks =
            static_cast<const NvtxExportTableCallbacks*>(get_table(NVTX_ETID_CALLBACKS));
        if (callbacks == nullptr || callbacks->GetModuleFunctionTable == nullptr)
            return false;
        NvtxFunctionTable core = nullptr, core2 = nullptr;
        unsigned int core_size = 0, core2_size = 0;
        if (!callbacks->GetModuleFunctionTable(NVTX_CB_MODULE_CORE, &core, &core_size) ||
            !callbacks->GetModuleFunctionTable(NVTX_CB_MODULE_CORE2, &core2, &core2_size))
            return false;
        auto set = [](NvtxFunctionTable table, unsigned int size, unsigned int id, auto* fn) {
            if (table != nullptr && id < size && table[id] != nullptr)
                *table[id] = reinterpret_cast<NvtxFunctionPointer>(fn);
        };
        set(core, core_size, NVTX_CBID_CORE_RangePushA, &nvtx_push_a);
        set(core, core_size, NVTX_CBID_CORE_RangePushW, &nvtx_push_w);
        set(core, core_size, NVTX_CBID_CORE_RangePushEx, &nvtx_push_ex);
        set(core, core_size, NVTX_CBID_CORE_RangePop, &nvtx_pop);
        set(core, core_size, NVTX_CBID_CORE_RangeStartA, &nvtx_start_a);
        set(core, core_size, NVTX_CBID_CORE_RangeStartW, &nvtx_start_w);
        set(core, core_size, NVTX_CBID_CORE_RangeStartEx, &nvtx_start_ex);
        set(core, core_size, NVTX_CBID_CORE_RangeEnd, &nvtx_end);
        set(core2, core2_size, NVTX_CBID_CORE2_DomainRangePushEx, &nvtx_domain_push_ex);
        set(core2, core2_size, NVTX_CBID_CORE2_DomainRangePop, &nvtx_domain_pop);
        set(core2, core2_size, NVTX_CBID_CORE2_DomainRangeStartEx, &nvtx_domain_start_ex);
        set(core2, core2_size, NVTX_CBID_CORE2_DomainRangeEnd, &nvtx_domain_end);
        set(core2, core2_size, NVTX_CBID_CORE2_DomainRegisterStringA, &nvtx_register_a);
        set(core2, core2_size, NVTX_CBID_CORE2_DomainRegisterStringW, &nvtx_register_w);
        set(core2, core2_size, NVTX_CBID_CORE2_DomainCreateA, &nvtx_domain_create_a);
        set(core2, core2_size, NVTX_CBID_CORE2_DomainCreateW, &nvtx_domain_create_w);
        set(core2, core2_size, NVTX_CBID_CORE2_DomainDestroy, &nvtx_domain_destroy);
        return true;
    }

private:
    injector() = default;

    // ---- configuration and failure ----------------------------------------------------------
    /// Reads the configuration once; false when capture is off (not started by `wlbtune
    /// profile`, or its directory cannot be trusted).
    bool configure_locked() {
        if (m_configured)
            return m_recorder != nullptr && !m_dir_untrusted;
        m_configured = true;
        m_pid = ::getpid();
        const auto env = process_environment();
        std::vector<std::string> warnings;
        m_config = read_inject_config(env, warnings);
        if (m_config.capture_dir.empty()) {
            std::fprintf(stderr,
                         "wlbtune: warning: libwlbtune_inject was loaded without "
                         "WLBTUNE_CAPTURE_DIR (not through `wlbtune profile`); capture is off\n");
            return false;
        }
        process_meta meta;
        meta.who = identify_launcher(env);
        meta.pid = static_cast<long>(m_pid);
        meta.host = host_name();
        meta.command = own_command();
        m_rank = meta.who.rank;
        try {
            m_recorder = std::make_unique<process_recorder>(m_config, std::move(meta));
        } catch (const std::exception& e) {
            // A step pattern that is not a regex: capture without NVTX step names.
            warn_locked(std::string("WLBTUNE_STEP_RANGE is not a valid regex (") + e.what() +
                        "); the built-in step names are used");
            m_config.step_range.clear();
            meta.who = identify_launcher(env);
            meta.pid = static_cast<long>(m_pid);
            meta.host = host_name();
            meta.command = own_command();
            m_recorder = std::make_unique<process_recorder>(m_config, std::move(meta));
        }
        for (const auto& w : warnings)
            warn_locked(w);
        for (const auto& w : identify_launcher(env).warnings)
            warn_locked(w);
        if (auto p = private_dir_problem(m_config.capture_dir, ::geteuid()); !p.empty()) {
            m_dir_untrusted = true;
            warn_locked("capture off: " + p);
            return false;
        }
        m_live = m_recorder.get();
        return true;
    }

    void warn_locked(const std::string& message) {
        if (!m_warned.insert(message).second)
            return;
        std::fprintf(stderr, "wlbtune: warning: rank %d (pid %ld): %s; the job continues\n", m_rank,
                     static_cast<long>(::getpid()), message.c_str());
        if (m_recorder != nullptr)
            m_recorder->note(message);
    }

    void disable_locked(const std::string& why) {
        warn_locked("capture off: " + why);
        if (m_capturing.exchange(false) && m_cupti_ready)
            disable_activities_locked();
        m_disabled = true;
    }

    // ---- windows ------------------------------------------------------------------------------
    bool subscribe_locked(const char* what) {
        if (m_subscriber != nullptr)
            return true;
        CUptiResult r;
        char other[CUPTI_OLD_SUBSCRIBER_NAME_MIN_LEN] = {};
        if (m_cupti.subscribe_v2 != nullptr) {
            CUpti_SubscriberParams p{};
            p.structSize = CUpti_SubscriberParams_STRUCT_SIZE;
            p.subscriberName = "wlbtune";
            p.oldSubscriberName = other;
            p.oldSubscriberSize = sizeof other;
            r = m_cupti.subscribe_v2(&m_subscriber, &on_callback, nullptr, &p);
        } else {
            r = m_cupti.subscribe(&m_subscriber, &on_callback, nullptr);
        }
        if (r == CUPTI_ERROR_MULTIPLE_SUBSCRIBERS_NOT_SUPPORTED) {
            m_subscriber = nullptr;
            warn_locked(std::string("another CUPTI client already traces this process (") +
                        (other[0] != '\0' ? other : "Nsight Systems, PyTorch's profiler, ...") +
                        "), and " + m_cupti.describe() +
                        " allows one at a time (this library was built against CUPTI " +
                        std::to_string(CUPTI_API_VERSION / 10000) +
                        ", which has no multi-subscriber mode); wlbtune steps aside for " + what);
            return false;
        }
        if (r != CUPTI_SUCCESS) {
            m_subscriber = nullptr;
            disable_locked("CUPTI refused a subscriber: " + m_cupti.result_text(r));
            return false;
        }
        m_cupti.enable_callback(1, m_subscriber, CUPTI_CB_DOMAIN_DRIVER_API,
                                CUPTI_DRIVER_TRACE_CBID_cuProfilerStart);
        m_cupti.enable_callback(1, m_subscriber, CUPTI_CB_DOMAIN_DRIVER_API,
                                CUPTI_DRIVER_TRACE_CBID_cuProfilerStop);
        return true;
    }

    void unsubscribe_locked() {
        if (m_subscriber != nullptr && m_config.mode != capture_mode::profiler_api) {
            m_cupti.unsubscribe(m_subscriber);
            m_subscriber = nullptr;
        }
    }

    std::vector<CUpti_ActivityKind> kinds() const {
        std::vector<CUpti_ActivityKind> k = {CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL};
        if (m_config.activities.memcpy)
            k.push_back(CUPTI_ACTIVITY_KIND_MEMCPY);
        if (m_config.activities.memset)
            k.push_back(CUPTI_ACTIVITY_KIND_MEMSET);
        if (m_config.activities.sync)
            k.push_back(CUPTI_ACTIVITY_KIND_SYNCHRONIZATION);
        if (m_config.nvtx)
            k.push_back(CUPTI_ACTIVITY_KIND_EXTERNAL_CORRELATION);
        return k;
    }

    void disable_activities_locked() {
        for (auto k : kinds())
            m_cupti.disable(k);
        m_cupti.flush_all(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
    }

    void open_window_locked(const std::string& by, std::int64_t steps, std::int64_t skip,
                            double seconds, std::int64_t steps_from_ns = 0) {
        if (m_disabled.load() || !m_cupti_ready || m_recorder->window_open())
            return;
        if (!subscribe_locked(by.c_str())) {
            ++m_windows_skipped;
            return;
        }
        for (auto k : kinds())
            if (const auto r = m_cupti.enable(k); r != CUPTI_SUCCESS) {
                disable_locked("CUPTI refused activity kind " + std::to_string(k) + ": " +
                               m_cupti.result_text(r));
                return;
            }
        m_capturing = true;
        capture_window w;
        w.opened_ns = now_ns();
        w.opened_by = by;
        w.steps = steps;
        w.skip_steps = skip;
        w.steps_from_ns = steps_from_ns;
        m_recorder->open_window(w);
        m_window_from = std::max(w.opened_ns, steps_from_ns);
        m_window_first = 0;
        m_window_seconds = seconds;
        m_window_started = std::chrono::steady_clock::now();
        // The steps that begin from now on are the window's.
        m_window_nvtx_base = m_recorder->nvtx().steps_begun();
        m_window_api_base = m_recorder->profiler_api_starts();
        m_window_steps = steps + skip;
    }

    void close_window_locked(const std::string& why) {
        if (!m_recorder->window_open())
            return;
        m_capturing = false;
        disable_activities_locked();
        m_recorder->close_window(now_ns(), why);
        unsubscribe_locked();
        write_locked();
        if (m_config.mode == capture_mode::armed)
            m_recorder->nvtx().discard_before(now_ns());
    }

    void write_locked() {
        if (m_recorder == nullptr || m_dir_untrusted || m_write_failed)
            return;
        try {
            if (auto problem = m_recorder->write(); !problem.empty()) {
                m_write_failed = true;
                disable_locked("cannot write the capture: " + problem);
            }
        } catch (const std::exception& e) {
            m_write_failed = true;
            disable_locked(std::string("cannot convert the capture: ") + e.what());
        }
    }

    static std::string seconds_text(double s) {
        char buffer[32];
        std::snprintf(buffer, sizeof buffer, "%g s", s);
        return buffer;
    }

    /// Why the open window is done (empty: it is not): its seconds, its steps counted on a live
    /// step marker (the steps that begin after it opened), or, for a triggered window in a
    /// process without a live marker, the default duration.
    std::string window_done_locked() {
        const double elapsed =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - m_window_started)
                .count();
        if (m_window_seconds > 0 && elapsed >= m_window_seconds)
            return seconds_text(m_window_seconds);
        auto& nvtx = m_recorder->nvtx();
        const bool live = nvtx.steps_begun() > 0 || m_recorder->profiler_api_starts() > 0;
        if (m_window_steps > 0 && live) {
            // The window's first step: the first begun at or after m_window_from.
            for (auto n = std::max(m_window_nvtx_base, m_window_first) + 1;
                 m_window_first == 0 && n <= nvtx.steps_begun(); ++n)
                if (const auto t = nvtx.step_start_time(n); t && *t >= m_window_from)
                    m_window_first = n;
            const bool nvtx_done =
                m_window_first > 0 && nvtx.steps_ended() >= m_window_first + m_window_steps - 1;
            const bool api_done =
                m_recorder->profiler_api_stops() >= m_window_api_base + m_window_steps;
            return nvtx_done || api_done ? std::to_string(m_window_steps) + " steps"
                                         : std::string();
        }
        if (m_config.mode == capture_mode::armed && (m_window_steps > 0 || m_window_seconds <= 0) &&
            elapsed >= m_config.window_seconds) {
            if (m_window_steps > 0)
                warn_locked("no live step marker (no NVTX step range, no cudaProfilerStart/Stop): "
                            "a window asked for steps lasts " +
                            seconds_text(m_config.window_seconds) + " (WLBTUNE_WINDOW_SECONDS)");
            return seconds_text(m_config.window_seconds) +
                   (m_window_steps > 0 ? " (no live step marker)" : "");
        }
        return {};
    }

    // ---- the control thread ------------------------------------------------------------------
    void start_control_thread_locked() {
        if (::pipe2(m_wake, O_CLOEXEC | O_NONBLOCK) != 0 ||
            ::pipe2(m_ack, O_CLOEXEC | O_NONBLOCK) != 0) {
            warn_locked(std::string("no control thread (pipe: ") + std::strerror(errno) +
                        "): triggers and signal flushes are off");
            return;
        }
        if (m_config.mode == capture_mode::armed) {
            m_control = std::make_unique<control_reader>(m_config.capture_dir, ::geteuid());
            std::string problem;
            if (const auto r = m_control->poll(problem); r && !fresh(*r))
                m_last_trigger = r->id; // a request older than this process is not for it
        }
        try {
            m_thread = std::thread([this] { control_loop(); });
        } catch (const std::exception& e) {
            warn_locked(std::string("no control thread: ") + e.what());
        }
    }

    /// A request written less than a minute before this process started CUDA is for it (a
    /// trigger sent while the job was starting up).
    bool fresh(const trigger_request&) const {
        struct stat st {};
        const std::string path = m_config.capture_dir + "/" + std::string(control_file_name);
        if (::stat(path.c_str(), &st) != 0)
            return false;
        return static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec >=
               m_started_ns - 60'000'000'000LL;
    }

    void control_loop() {
        sigset_t block;
        sigemptyset(&block);
        sigaddset(&block, SIGTERM);
        sigaddset(&block, SIGINT);
        ::pthread_sigmask(SIG_BLOCK, &block, nullptr);
        for (;;) {
            pollfd p{m_wake[0], POLLIN, 0};
            ::poll(&p, 1, m_config.poll_ms);
            char buffer[64];
            const ssize_t n = ::read(m_wake[0], buffer, sizeof buffer);
            try {
                std::lock_guard lock(m_mutex);
                for (ssize_t i = 0; i < n; ++i) {
                    switch (buffer[i]) {
                    case wake_quit:
                        return;
                    case wake_api_start:
                        if (m_config.mode == capture_mode::profiler_api)
                            open_window_locked("cudaProfilerStart", 0, 0, 0.0);
                        break;
                    case wake_api_stop:
                        if (m_config.mode == capture_mode::profiler_api)
                            close_window_locked("cudaProfilerStop");
                        break;
                    case wake_flush_end:
                        close_window_locked("a signal (SIGTERM or SIGINT)");
                        write_locked();
                        acknowledge();
                        break;
                    case wake_flush:
                        flush_snapshot_locked();
                        acknowledge();
                        break;
                    default:
                        break;
                    }
                }
                if (m_disabled.load())
                    continue;
                if (m_control != nullptr) {
                    std::string problem;
                    const auto r = m_control->poll(problem);
                    if (!problem.empty())
                        warn_locked(problem);
                    if (r && r->id > m_last_trigger) {
                        m_last_trigger = r->id;
                        m_pending = *r;
                    }
                    if (m_pending && !m_recorder->window_open()) {
                        const auto req = *m_pending;
                        m_pending.reset();
                        // Every process keeps the steps that begin once all of them have seen
                        // the request: its time plus two poll intervals.
                        open_window_locked("trigger " + std::to_string(req.id), req.steps, 0,
                                           req.seconds > 0 ? req.seconds : m_config.seconds,
                                           req.written_ns > 0
                                               ? req.written_ns + 2'000'000LL * m_config.poll_ms
                                               : 0);
                    }
                }
                if (m_recorder->window_open())
                    if (const auto why = window_done_locked(); !why.empty())
                        close_window_locked(why);
            } catch (...) {
                // Out of memory or a bug in the conversion: capture off, the job goes on.
                try {
                    std::lock_guard lock(m_mutex);
                    disable_locked("an internal error in the control thread");
                } catch (...) {
                }
            }
        }
    }

    void flush_snapshot_locked() {
        if (m_capturing)
            m_cupti.flush_all(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
        write_locked();
    }

    void acknowledge() {
        const char c = 1;
        [[maybe_unused]] const auto n = ::write(m_ack[1], &c, 1);
    }

    static void wake(char what) {
        auto& s = get();
        if (s.m_wake[1] >= 0) {
            [[maybe_unused]] const auto n = ::write(s.m_wake[1], &what, 1);
        }
    }

    // ---- exit, fork and signals ----------------------------------------------------------------
    static void at_exit() {
        auto& s = get();
        if (s.m_forked || ::getpid() != s.m_pid)
            return;
        try {
            wake(wake_quit);
            if (s.m_thread.joinable())
                s.m_thread.join();
            std::lock_guard lock(s.m_mutex);
            if (s.m_recorder == nullptr)
                return;
            s.close_window_locked("exit");
            s.write_locked();
        } catch (...) {
            // Exit goes on; what was written before stays.
        }
    }

    static void in_child() {
        auto& s = get();
        s.m_forked = true; // the child's copy of the state: no thread, not ours to write
        s.m_wake[1] = -1;
    }

    void install_signal_handlers_locked() {
        for (int sig : {SIGTERM, SIGINT}) {
            struct sigaction action {};
            action.sa_sigaction = &on_signal;
            action.sa_flags = SA_SIGINFO | SA_RESTART;
            sigemptyset(&action.sa_mask);
            struct sigaction previous {};
            if (::sigaction(sig, &action, &previous) == 0)
                m_previous[sig == SIGTERM ? 0 : 1] = previous;
        }
    }

    static void on_signal(int sig, siginfo_t* info, void* context) {
        auto& s = get();
        const int saved = errno;
        const struct sigaction previous = s.m_previous[sig == SIGTERM ? 0 : 1];
        const bool ends = !(previous.sa_flags & SA_SIGINFO) && previous.sa_handler == SIG_DFL;
        const bool ignored = !(previous.sa_flags & SA_SIGINFO) && previous.sa_handler == SIG_IGN;
        if (!s.m_forked && ::getpid() == s.m_pid && s.m_wake[1] >= 0 && !ignored) {
            char drain[16];
            while (::read(s.m_ack[0], drain, sizeof drain) > 0) {
            }
            wake(ends ? wake_flush_end : wake_flush);
            pollfd p{s.m_ack[0], POLLIN, 0};
            ::poll(&p, 1, ends ? 5000 : 2000);
        }
        if (ends) {
            ::sigaction(sig, &previous, nullptr);
            ::raise(sig); // delivered when this handler returns
        } else if (previous.sa_flags & SA_SIGINFO) {
            if (previous.sa_sigaction != nullptr)
                previous.sa_sigaction(sig, info, context);
        } else if (!ignored && previous.sa_handler != nullptr) {
            previous.sa_handler(sig);
        }
        errno = saved;
    }

    // ---- CUPTI callbacks
    // -------------------------------------------------------------------------
    static void CUPTIAPI buffer_requested(std::uint8_t** buffer, std::size_t* size,
                                          std::size_t* max_records) {
        *max_records = 0;
        std::uint8_t* b = nullptr;
        auto& s = get();
        try {
            std::lock_guard lock(s.m_pool_mutex);
            if (s.m_pool != nullptr)
                b = s.m_pool->acquire();
        } catch (...) {
            b = nullptr;
        }
        *buffer = b; // nullptr declines: CUPTI drops records and counts them
        *size = b != nullptr ? s.m_config.buffer_bytes : 0;
    }

    static void CUPTIAPI buffer_completed(CUcontext context, std::uint32_t stream_id,
                                          std::uint8_t* buffer, std::size_t /*size*/,
                                          std::size_t valid) {
        if (buffer == nullptr)
            return;
        auto& s = get();
        try {
            capture_batch local;
            CUpti_Activity* record = nullptr;
            while (valid > 0 && s.m_cupti.next_record(buffer, valid, &record) == CUPTI_SUCCESS)
                parse_cupti_record(record, local);
            std::size_t dropped = 0;
            if (s.m_cupti.dropped_records(context, stream_id, &dropped) == CUPTI_SUCCESS)
                local.losses.dropped_records += dropped;
            {
                std::lock_guard lock(s.m_pool_mutex);
                local.losses.buffers_refused = s.m_pool->refused() - s.m_refused_reported;
                s.m_refused_reported = s.m_pool->refused();
                s.m_pool->release(buffer);
            }
            if (auto* rec = s.m_live.load(std::memory_order_acquire); rec != nullptr && !s.m_forked)
                rec->add(std::move(local));
        } catch (...) {
            // Never throw into CUPTI; this buffer's records are lost.
        }
    }

    static void CUPTIAPI on_callback(void*, CUpti_CallbackDomain domain, CUpti_CallbackId cbid,
                                     const void* data) {
        if (domain != CUPTI_CB_DOMAIN_DRIVER_API || data == nullptr)
            return;
        auto& s = get();
        auto* rec = s.m_live.load(std::memory_order_acquire);
        if (s.m_forked || rec == nullptr)
            return;
        const auto* d = static_cast<const CUpti_CallbackData*>(data);
        try {
            if (cbid == CUPTI_DRIVER_TRACE_CBID_cuProfilerStart &&
                d->callbackSite == CUPTI_API_EXIT) {
                rec->profiler_api(true, now_ns());
                wake(wake_api_start);
            } else if (cbid == CUPTI_DRIVER_TRACE_CBID_cuProfilerStop &&
                       d->callbackSite == CUPTI_API_ENTER) {
                rec->profiler_api(false, now_ns());
                wake(wake_api_stop);
            }
        } catch (...) {
        }
    }

    // ---- NVTX callbacks
    // --------------------------------------------------------------------------
    static std::string narrow(const wchar_t* w) {
        std::string out;
        for (; w != nullptr && *w != 0; ++w)
            out.push_back(*w < 128 ? static_cast<char>(*w) : '?');
        return out;
    }

    static std::string message_of(const nvtxEventAttributes_t* a) {
        if (a == nullptr)
            return {};
        switch (a->messageType) {
        case NVTX_MESSAGE_TYPE_ASCII:
            return a->message.ascii != nullptr ? a->message.ascii : "";
        case NVTX_MESSAGE_TYPE_UNICODE:
            return narrow(a->message.unicode);
        case NVTX_MESSAGE_TYPE_REGISTERED:
            return a->message.registered != nullptr
                       ? *reinterpret_cast<const std::string*>(a->message.registered)
                       : "";
        default:
            return {};
        }
    }

    /// The stack key: ranges nest per thread and per domain (NVTX's rule).
    static std::uint64_t stack_key(const void* domain) {
        return thread_key() * 1'000'003u ^ reinterpret_cast<std::uintptr_t>(domain);
    }

    static thread_local std::vector<std::uint64_t> t_pushed; // external correlation ids pushed

    static int push(const void* domain, std::string_view name) {
        auto& s = get();
        auto* rec = s.m_live.load(std::memory_order_acquire);
        if (s.m_forked || rec == nullptr || s.m_disabled.load(std::memory_order_relaxed))
            return 0;
        try {
            const auto id = rec->nvtx().push(stack_key(domain), name, now_ns());
            if (id != 0 && s.m_capturing.load(std::memory_order_relaxed) &&
                s.m_cupti.push_external(CUPTI_EXTERNAL_CORRELATION_KIND_CUSTOM0, id) ==
                    CUPTI_SUCCESS)
                t_pushed.push_back(id);
        } catch (...) {
        }
        return 0;
    }

    static int pop(const void* domain) {
        auto& s = get();
        auto* rec = s.m_live.load(std::memory_order_acquire);
        if (s.m_forked || rec == nullptr || s.m_disabled.load(std::memory_order_relaxed))
            return 0;
        try {
            const auto id = rec->nvtx().pop(stack_key(domain), now_ns());
            if (id == 0 || t_pushed.empty())
                return 0;
            // CUPTI's external correlation stack is per thread, NVTX's per thread and domain:
            // take `id` out from under whatever another domain pushed on top of it.
            const auto it = std::find(t_pushed.rbegin(), t_pushed.rend(), id);
            if (it == t_pushed.rend())
                return 0;
            const auto above = static_cast<std::size_t>(it - t_pushed.rbegin());
            std::uint64_t ignored = 0;
            for (std::size_t i = 0; i <= above; ++i)
                s.m_cupti.pop_external(CUPTI_EXTERNAL_CORRELATION_KIND_CUSTOM0, &ignored);
            const std::vector<std::uint64_t> keep(t_pushed.end() - static_cast<long>(above),
                                                  t_pushed.end());
            t_pushed.resize(t_pushed.size() - above - 1);
            for (auto k : keep)
                if (s.m_cupti.push_external(CUPTI_EXTERNAL_CORRELATION_KIND_CUSTOM0, k) ==
                    CUPTI_SUCCESS)
                    t_pushed.push_back(k);
        } catch (...) {
        }
        return 0;
    }

    static nvtxRangeId_t start(std::string_view name) {
        auto& s = get();
        const auto id = s.m_next_range.fetch_add(1) + 1;
        auto* rec = s.m_live.load(std::memory_order_acquire);
        if (s.m_forked || rec == nullptr || s.m_disabled.load(std::memory_order_relaxed))
            return id;
        try {
            rec->nvtx().start(id, name, now_ns());
        } catch (...) {
        }
        return id;
    }

    static void end(nvtxRangeId_t id) {
        auto& s = get();
        auto* rec = s.m_live.load(std::memory_order_acquire);
        if (s.m_forked || rec == nullptr || s.m_disabled.load(std::memory_order_relaxed))
            return;
        try {
            rec->nvtx().end(id, now_ns());
        } catch (...) {
        }
    }

    static const std::string* intern(std::string text) {
        auto& s = get();
        std::lock_guard lock(s.m_strings_mutex);
        s.m_strings.push_back(std::move(text));
        return &s.m_strings.back();
    }

    static int NVTX_API nvtx_push_a(const char* m) { return push(nullptr, m ? m : ""); }
    static int NVTX_API nvtx_push_w(const wchar_t* m) { return push(nullptr, narrow(m)); }
    static int NVTX_API nvtx_push_ex(const nvtxEventAttributes_t* a) {
        return push(nullptr, message_of(a));
    }
    static int NVTX_API nvtx_pop() { return pop(nullptr); }
    static nvtxRangeId_t NVTX_API nvtx_start_a(const char* m) { return start(m ? m : ""); }
    static nvtxRangeId_t NVTX_API nvtx_start_w(const wchar_t* m) { return start(narrow(m)); }
    static nvtxRangeId_t NVTX_API nvtx_start_ex(const nvtxEventAttributes_t* a) {
        return start(message_of(a));
    }
    static void NVTX_API nvtx_end(nvtxRangeId_t id) { end(id); }
    static int NVTX_API nvtx_domain_push_ex(nvtxDomainHandle_t d, const nvtxEventAttributes_t* a) {
        return push(d, message_of(a));
    }
    static int NVTX_API nvtx_domain_pop(nvtxDomainHandle_t d) { return pop(d); }
    static nvtxRangeId_t NVTX_API nvtx_domain_start_ex(nvtxDomainHandle_t,
                                                       const nvtxEventAttributes_t* a) {
        return start(message_of(a));
    }
    static void NVTX_API nvtx_domain_end(nvtxDomainHandle_t, nvtxRangeId_t id) { end(id); }
    static nvtxStringHandle_t NVTX_API nvtx_register_a(nvtxDomainHandle_t, const char* text) {
        try {
            return reinterpret_cast<nvtxStringHandle_t>(
                const_cast<std::string*>(intern(text ? text : "")));
        } catch (...) {
            return nullptr;
        }
    }
    static nvtxStringHandle_t NVTX_API nvtx_register_w(nvtxDomainHandle_t, const wchar_t* text) {
        try {
            return reinterpret_cast<nvtxStringHandle_t>(
                const_cast<std::string*>(intern(narrow(text))));
        } catch (...) {
            return nullptr;
        }
    }
    static nvtxDomainHandle_t NVTX_API nvtx_domain_create_a(const char* name) {
        try {
            return reinterpret_cast<nvtxDomainHandle_t>(
                const_cast<std::string*>(intern(name ? name : "")));
        } catch (...) {
            return nullptr;
        }
    }
    static nvtxDomainHandle_t NVTX_API nvtx_domain_create_w(const wchar_t* name) {
        try {
            return reinterpret_cast<nvtxDomainHandle_t>(
                const_cast<std::string*>(intern(narrow(name))));
        } catch (...) {
            return nullptr;
        }
    }
    static void NVTX_API nvtx_domain_destroy(nvtxDomainHandle_t) {}

    // ---- state
    // ------------------------------------------------------------------------------------
    std::mutex m_mutex; // configuration, windows, writing
    bool m_configured = false;
    bool m_cuda_started = false;
    bool m_dir_untrusted = false;
    std::atomic<bool> m_disabled{false};
    bool m_write_failed = false;
    bool m_cupti_ready = false;
    std::atomic<bool> m_forked{false};
    std::atomic<bool> m_capturing{false};
    pid_t m_pid = 0;
    int m_rank = 0;
    std::int64_t m_started_ns = now_ns();
    inject_config m_config;
    std::unique_ptr<process_recorder> m_recorder;
    /// What the job's threads read (set once, under m_mutex, when the recorder exists).
    std::atomic<process_recorder*> m_live{nullptr};
    cupti_api m_cupti;
    std::mutex m_pool_mutex;
    std::unique_ptr<buffer_pool> m_pool;
    std::uint64_t m_refused_reported = 0;
    CUpti_SubscriberHandle m_subscriber = nullptr;
    std::set<std::string> m_warned;
    int m_windows_skipped = 0;
    // The open window's limits.
    double m_window_seconds = 0.0;
    std::chrono::steady_clock::time_point m_window_started;
    std::int64_t m_window_nvtx_base = 0;
    std::int64_t m_window_from = 0;  ///< its steps begin at or after this
    std::int64_t m_window_first = 0; ///< the index (from 1) of its first NVTX step; 0: not yet
    std::int64_t m_window_api_base = 0;
    std::int64_t m_window_steps = 0;
    // Triggers.
    std::unique_ptr<control_reader> m_control;
    std::int64_t m_last_trigger = 0;
    std::optional<trigger_request> m_pending;
    // The control thread.
    std::thread m_thread;
    int m_wake[2] = {-1, -1};
    int m_ack[2] = {-1, -1};
    struct sigaction m_previous[2]{};
    // NVTX.
    std::atomic<std::uint64_t> m_next_range{0};
    std::mutex m_strings_mutex;
    std::deque<std::string> m_strings;
};

thread_local std::vector<std::uint64_t> injector::t_pushed;

} // namespace
} // namespace wlb::profiler

WLB_INJECT_EXPORT int InitializeInjection(void) {
    try {
        wlb::profiler::injector::get().on_cuda_init();
    } catch (...) {
        // Never into the driver: capture is off.
    }
    return 1;
}

WLB_INJECT_EXPORT int InitializeInjectionNvtx2(NvtxGetExportTableFunc_t get_table) {
    try {
        return wlb::profiler::injector::get().on_nvtx_init(get_table) ? 1 : 0;
    } catch (...) {
        return 0;
    }
}
