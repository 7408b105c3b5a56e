#include "base/atomic_file.hpp"

#include "base/error.hpp"

#include <array>
#include <atomic>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <fmt/format.h>
#include <mutex>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

namespace wlb {
namespace {

// ---- temporary files removed on SIGINT, SIGTERM and SIGHUP ----
// A fixed table the signal handler can read without locks: a slot's path is written before
// its flag is set, and the handler only calls unlink (async-signal-safe).

constexpr int max_pending = 64;
struct pending_slot {
    std::atomic<bool> used{false};
    char path[PATH_MAX] = {};
};
std::array<pending_slot, max_pending> g_pending;

extern "C" void remove_pending_and_reraise(int sig) {
    for (auto& s : g_pending)
        if (s.used.load(std::memory_order_acquire))
            ::unlink(s.path);
    std::signal(sig, SIG_DFL);
    std::raise(sig);
}

void install_handlers_once() {
    static std::once_flag once;
    std::call_once(once, [] {
        for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
            struct sigaction old {};
            if (::sigaction(sig, nullptr, &old) != 0 || old.sa_handler != SIG_DFL)
                continue; // someone else handles it (or it is ignored): leave it alone
            struct sigaction sa {};
            sa.sa_handler = remove_pending_and_reraise;
            sigemptyset(&sa.sa_mask);
            ::sigaction(sig, &sa, nullptr);
        }
    });
}

/// A slot holding `path`, or -1 when every slot is taken (the file is then removed on every
/// exit path but a signal).
int register_pending(const std::string& path) {
    if (path.size() >= PATH_MAX)
        return -1;
    install_handlers_once();
    for (int i = 0; i < max_pending; ++i) {
        auto& s = g_pending[static_cast<std::size_t>(i)];
        bool expected = false;
        if (s.used.load(std::memory_order_relaxed))
            continue;
        // Claim it with the path written first: the handler sees either nothing or all of it.
        static std::mutex claim;
        std::lock_guard lock(claim);
        if (s.used.load(std::memory_order_relaxed))
            continue;
        std::memcpy(s.path, path.c_str(), path.size() + 1);
        s.used.compare_exchange_strong(expected, true, std::memory_order_release);
        return i;
    }
    return -1;
}

void unregister_pending(int slot) noexcept {
    if (slot >= 0)
        g_pending[static_cast<std::size_t>(slot)].used.store(false, std::memory_order_release);
}

// ---- paths ----

std::string dir_of(const std::string& p) {
    const auto slash = p.find_last_of('/');
    if (slash == std::string::npos)
        return ".";
    return slash == 0 ? "/" : p.substr(0, slash);
}

std::string base_of(const std::string& p) {
    const auto slash = p.find_last_of('/');
    return slash == std::string::npos ? p : p.substr(slash + 1);
}

/// `path` with its symbolic links followed to the final target (which may not exist yet).
std::string follow_links(const std::string& path) {
    std::string p = path;
    for (int hops = 0; hops < 40; ++hops) {
        struct stat st {};
        if (::lstat(p.c_str(), &st) != 0 || !S_ISLNK(st.st_mode))
            return p;
        std::array<char, PATH_MAX> buf{};
        const auto n = ::readlink(p.c_str(), buf.data(), buf.size() - 1);
        if (n < 0)
            throw runtime_failure(
                fmt::format("{}: cannot read the symbolic link: {}", path, std::strerror(errno)));
        std::string target(buf.data(), static_cast<std::size_t>(n));
        p = target.starts_with('/') ? target : dir_of(p) + "/" + target;
    }
    throw input_error(path, "too many levels of symbolic links");
}

enum class target_kind { absent, regular, direct };

/// What sits at `target` (links already followed); refuses what cannot be an output.
target_kind kind_of(const std::string& target, const std::string& path, struct stat& st) {
    if (::stat(target.c_str(), &st) != 0) {
        if (errno == ENOENT)
            return target_kind::absent;
        throw runtime_failure(fmt::format("{}: cannot inspect: {}", path, std::strerror(errno)));
    }
    if (S_ISREG(st.st_mode))
        return target_kind::regular;
    if (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode))
        return target_kind::direct;
    const char* what = S_ISDIR(st.st_mode)    ? "a directory"
                       : S_ISSOCK(st.st_mode) ? "a socket"
                       : S_ISBLK(st.st_mode)  ? "a block device"
                                              : "not a regular file";
    throw input_error(path,
                      fmt::format("is {}; refusing to write over it (give a file path)", what));
}

/// A temporary name beside `target` that fits the directory's name limit.
std::string temporary_name(const std::string& target, unsigned attempt) {
    const std::string dir = dir_of(target);
    long name_max = ::pathconf(dir.c_str(), _PC_NAME_MAX);
    if (name_max <= 0)
        name_max = 255;
    static std::atomic<unsigned> counter{0};
    const std::string suffix =
        fmt::format(".tmp.{:x}.{:x}.{:x}", ::getpid(), counter.fetch_add(1), attempt);
    const auto base = base_of(target);
    const auto room = static_cast<std::size_t>(name_max) - 1 - suffix.size(); // 1: the dot
    return (dir == "." && !target.starts_with("./") ? std::string() : dir + "/") + "." +
           base.substr(0, std::min(base.size(), room)) + suffix;
}

} // namespace

void check_output_path(const std::string& path, std::string_view what) {
    if (path == "-")
        return;
    if (path.empty())
        throw input_error(fmt::format("{}: an empty path", what));
    const auto target = follow_links(path);
    struct stat st {};
    const auto kind = kind_of(target, fmt::format("{} {}", what, path), st);
    if (kind == target_kind::direct) {
        if (::access(target.c_str(), W_OK) != 0)
            throw input_error(
                fmt::format("{} {}: cannot write: {}", what, path, std::strerror(errno)));
        return;
    }
    const auto dir = dir_of(target);
    struct stat ds {};
    if (::stat(dir.c_str(), &ds) != 0 || !S_ISDIR(ds.st_mode))
        throw input_error(fmt::format("{} {}: the directory {} does not exist", what, path, dir));
    if (::access(dir.c_str(), W_OK | X_OK) != 0)
        throw input_error(fmt::format("{} {}: cannot create files in {}: {}", what, path, dir,
                                      std::strerror(errno)));
}

atomic_writer::atomic_writer(std::string path, bool gzip) : m_path(std::move(path)) {
    if (m_path == "-") {
        if (gzip)
            throw usage_error("cannot write gzip-compressed output to standard output");
        m_stdout = true;
        m_file = stdout;
        return;
    }
    m_target = follow_links(m_path);
    struct stat st {};
    const auto kind = kind_of(m_target, m_path, st);
    int fd = -1;
    if (kind == target_kind::direct) {
        m_direct = true;
        fd = ::open(m_target.c_str(), O_WRONLY | O_CLOEXEC);
        if (fd < 0)
            throw runtime_failure(
                fmt::format("{}: cannot open for writing: {}", m_path, std::strerror(errno)));
    } else {
        const mode_t mode = kind == target_kind::regular ? (st.st_mode & 07777) : 0666;
        for (unsigned attempt = 0; fd < 0; ++attempt) {
            m_tmp = temporary_name(m_target, attempt);
            fd = ::open(m_tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
            if (fd < 0 && (errno != EEXIST || attempt > 16)) {
                const int e = errno;
                m_tmp.clear();
                throw runtime_failure(fmt::format("{}: cannot create a file in {}: {}", m_path,
                                                  dir_of(m_target), std::strerror(e)));
            }
        }
        m_slot = register_pending(m_tmp);
        if (kind == target_kind::regular)
            (void)::fchmod(fd, mode); // the replaced file's permissions, whatever the umask
    }
    if (gzip) {
        m_gz = gzdopen(fd, "wb6");
        if (!m_gz) {
            ::close(fd);
            discard();
            throw runtime_failure(fmt::format("{}: cannot start gzip output", m_path));
        }
    } else {
        m_file = ::fdopen(fd, "wb");
        if (!m_file) {
            ::close(fd);
            discard();
            throw runtime_failure(
                fmt::format("{}: cannot open for writing: {}", m_path, std::strerror(errno)));
        }
    }
}

void atomic_writer::discard() noexcept {
    if (!m_tmp.empty())
        ::unlink(m_tmp.c_str()); // not committed: drop the partial file
    unregister_pending(m_slot);
    m_slot = -1;
    m_tmp.clear();
}

atomic_writer::~atomic_writer() {
    if (m_stdout)
        return;
    if (m_gz)
        gzclose(static_cast<gzFile>(m_gz));
    if (m_file)
        std::fclose(m_file);
    discard();
}

void atomic_writer::write(std::string_view bytes) {
    if (bytes.empty())
        return;
    if (m_gz) {
        if (gzwrite(static_cast<gzFile>(m_gz), bytes.data(), static_cast<unsigned>(bytes.size())) <=
            0)
            throw runtime_failure(fmt::format("{}: write failed", m_path));
    } else if (m_file) {
        if (std::fwrite(bytes.data(), 1, bytes.size(), m_file) != bytes.size())
            throw runtime_failure(
                fmt::format("{}: write failed: {}", m_path, std::strerror(errno)));
    } else {
        throw internal_error(fmt::format("{}: write after commit", m_path));
    }
}

void atomic_writer::commit() {
    if (m_stdout) {
        std::fflush(stdout);
        m_file = nullptr;
        return;
    }
    if (m_gz) {
        int rc = gzclose(static_cast<gzFile>(m_gz));
        m_gz = nullptr;
        if (rc != Z_OK)
            throw runtime_failure(fmt::format("{}: writing the gzip stream failed", m_path));
    } else if (m_file) {
        const int flushed = std::fflush(m_file);
        const int e = errno;
        const int rc = std::fclose(m_file);
        m_file = nullptr;
        if (flushed != 0 || rc != 0)
            throw runtime_failure(fmt::format("{}: write failed: {}", m_path,
                                              std::strerror(flushed != 0 ? e : errno)));
    }
    if (m_direct)
        return;
    if (std::rename(m_tmp.c_str(), m_target.c_str()) != 0)
        throw runtime_failure(
            fmt::format("{}: cannot replace it: {}", m_path, std::strerror(errno)));
    unregister_pending(m_slot);
    m_slot = -1;
    m_tmp.clear();
}

void write_file_atomic(const std::string& path, std::string_view content) {
    atomic_writer w(path, false);
    w.write(content);
    w.commit();
}

} // namespace wlb
