#include "profiler/capture/inject/private_files.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace wlb::profiler {
namespace {

std::string errno_text(int e) {
    return std::strerror(e);
}

std::string mode_text(mode_t m) {
    char buffer[8];
    std::snprintf(buffer, sizeof buffer, "%04o", static_cast<unsigned>(m & 07777));
    return buffer;
}

} // namespace

std::string private_dir_problem(const std::string& dir, uid_t uid) {
    struct stat st {};
    if (::lstat(dir.c_str(), &st) != 0)
        return dir + ": " + errno_text(errno);
    if (S_ISLNK(st.st_mode))
        return dir + " is a symbolic link (a capture directory must be a real directory)";
    if (!S_ISDIR(st.st_mode))
        return dir + " is not a directory";
    if (st.st_uid != uid)
        return dir + " belongs to user id " + std::to_string(st.st_uid) + ", not to user id " +
               std::to_string(uid);
    if ((st.st_mode & 077) != 0)
        return dir + " is open to other users (mode " + mode_text(st.st_mode) +
               "; a capture directory must be 0700)";
    return {};
}

std::string make_private_dir(const std::string& dir, uid_t uid) {
    if (dir.empty())
        return "an empty directory name";
    // Missing parents first (0700 too: created for this capture).
    for (std::size_t slash = dir.find('/', 1); slash != std::string::npos;
         slash = dir.find('/', slash + 1)) {
        const std::string parent = dir.substr(0, slash);
        if (::mkdir(parent.c_str(), 0700) != 0 && errno != EEXIST)
            return parent + ": cannot create: " + errno_text(errno);
    }
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
        return dir + ": cannot create: " + errno_text(errno);
    return private_dir_problem(dir, uid);
}

private_read read_private_file(const std::string& path, uid_t uid, std::size_t max_bytes) {
    private_read out;
    const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ENOENT)
            return out;
        out.problem = errno == ELOOP ? path + " is a symbolic link; ignored"
                                     : path + ": cannot open: " + errno_text(errno);
        return out;
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        out.problem = path + ": " + errno_text(errno);
    } else if (!S_ISREG(st.st_mode)) {
        out.problem = path + " is not a regular file; ignored";
    } else if (st.st_uid != uid) {
        out.problem = path + " belongs to user id " + std::to_string(st.st_uid) +
                      ", not to user id " + std::to_string(uid) + "; ignored";
    } else if ((st.st_mode & 022) != 0) {
        out.problem =
            path + " is writable by other users (mode " + mode_text(st.st_mode) + "); ignored";
    } else {
        std::string text(std::min<std::size_t>(max_bytes, static_cast<std::size_t>(st.st_size)),
                         '\0');
        std::size_t got = 0;
        while (got < text.size()) {
            const ssize_t n = ::read(fd, text.data() + got, text.size() - got);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            got += static_cast<std::size_t>(n);
        }
        text.resize(got);
        out.content = std::move(text);
        out.modified_ns =
            static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
    }
    ::close(fd);
    return out;
}

std::string write_private_file(const std::string& path, const std::string& content) {
    const std::string tmp = path + ".tmp." + std::to_string(::getpid());
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return tmp + ": cannot create: " + errno_text(errno);
    std::size_t done = 0;
    std::string problem;
    while (done < content.size()) {
        const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            problem = tmp + ": cannot write: " + errno_text(n < 0 ? errno : ENOSPC);
            break;
        }
        done += static_cast<std::size_t>(n);
    }
    if (::close(fd) != 0 && problem.empty())
        problem = tmp + ": cannot write: " + errno_text(errno);
    if (problem.empty() && ::rename(tmp.c_str(), path.c_str()) != 0)
        problem = path + ": cannot rename the temporary file into place: " + errno_text(errno);
    if (!problem.empty())
        ::unlink(tmp.c_str());
    return problem;
}

} // namespace wlb::profiler
