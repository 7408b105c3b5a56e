// Output files are never half-written (style.md, "Errors"): content goes to a temporary file
// beside the target, which is renamed over the target only once it is complete.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

namespace wlb {

/// Writes `content` to `path` atomically. "-" writes to standard output. Throws
/// wlb::runtime_failure naming the path on any I/O error; the target is then untouched.
void write_file_atomic(const std::string& path, std::string_view content);

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
    std::string m_path;
    std::string m_tmp;
    std::FILE* m_file = nullptr; // plain output
    void* m_gz = nullptr;        // gzFile when compressing
    bool m_stdout = false;
};

} // namespace wlb
