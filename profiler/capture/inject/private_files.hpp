// The capture directory and its control file belong to the job's user alone (a shared cluster
// file system must not let anyone else switch capture on, or make the job write elsewhere).
// These checks are made on what is actually opened (lstat, O_NOFOLLOW, fstat), never on a name
// that could be swapped in between. Host code, POSIX; no exceptions (the injection library calls
// them inside the job): each returns what is wrong in words, empty when all is well.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <sys/types.h>

namespace wlb::profiler {

/// Why `dir` is not a private directory of `uid`: not a directory, a symbolic link, owned by
/// another user, or open to group or others (any of the 077 permission bits). Empty: it is one.
[[nodiscard]] std::string private_dir_problem(const std::string& dir, uid_t uid);

/// Creates `dir` (and missing parents, 0700) or accepts an existing private directory of
/// `uid`. Returns what is wrong, empty on success.
[[nodiscard]] std::string make_private_dir(const std::string& dir, uid_t uid);

struct private_read {
    std::optional<std::string> content; ///< absent: no such file, or refused (see problem)
    std::string problem;                ///< why it was refused; empty when absent or read
    std::int64_t modified_ns = 0;       ///< its last modification (CLOCK_REALTIME), when read
};
/// Reads at most `max_bytes` of a regular file that `uid` owns and nobody else may write (no
/// 022 bits), refusing symbolic links. A missing file is not a problem.
[[nodiscard]] private_read read_private_file(const std::string& path, uid_t uid,
                                             std::size_t max_bytes);

/// Writes `content` to `path` through a temporary file in the same directory (mode 0600) and a
/// rename, so a reader sees the old file or the new one, never a part. Empty on success, else
/// what failed (the temporary file is removed).
[[nodiscard]] std::string write_private_file(const std::string& path, const std::string& content);

} // namespace wlb::profiler
