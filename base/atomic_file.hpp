// Output files are never half-written and never destroy what sits at their path (style.md,
// "Errors"; docs/cli.md, "Output files"):
//   - "-" writes to standard output;
//   - a regular file (or a new one) gets its content in a temporary file beside it, which is
//     renamed over it only once complete; the temporary file's name stays within the file
//     system's name limit, and it is removed on every exit path: an exception, a destruction
//     without commit, SIGINT, SIGTERM or SIGHUP;
//   - a symbolic link is followed: its final target is replaced atomically, the link stays;
//   - a character device or a FIFO (/dev/null, /dev/stdout, a pipe) is written directly, never
//     renamed over; a directory, a socket or a block device is refused;
//   - every error names the user's path, not the temporary file.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

namespace wlb {

/// Writes `content` to `path` as above. Throws wlb::runtime_failure naming the path on any I/O
/// error (the target is then untouched) and wlb::input_error for a path that cannot be an
/// output (a directory, a socket, a block device).
void write_file_atomic(const std::string& path, std::string_view content);

/// Checks, before long work, that `path` can be written as an output: "-", or a path whose
/// target is a regular file, a character device or a FIFO, or does not exist in a writable
/// directory. Throws wlb::input_error naming `what` (the option, e.g. "-o") and the path.
void check_output_path(const std::string& path, std::string_view what);

/// A streaming writer with the same guarantee: write() many times, then commit(). If the
/// object is destroyed without commit() (an exception), the temporary file is removed and the
/// target is untouched. Optionally gzip-compressed (when `gzip` is true).
class atomic_writer {
public:
    explicit atomic_writer(std::string path, bool gzip = false);
    ~atomic_writer();
    atomic_writer(const atomic_writer&) = delete;
    atomic_writer& operator=(const atomic_writer&) = delete;

    void write(std::string_view bytes);
    void commit();
    [[nodiscard]] const std::string& path() const noexcept { return m_path; }

private:
    void discard() noexcept;

    std::string m_path;          ///< as the user gave it
    std::string m_target;        ///< what is replaced: the path with its symbolic links followed
    std::string m_tmp;           ///< the temporary file; empty when writing directly or committed
    int m_slot = -1;             ///< its entry in the signal handler's list of files to remove
    std::FILE* m_file = nullptr; // plain output
    void* m_gz = nullptr;        // gzFile when compressing
    bool m_stdout = false;
    bool m_direct = false; ///< a character device or FIFO, written in place
};

} // namespace wlb
