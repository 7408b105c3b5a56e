#include "base/atomic_file.hpp"

#include "base/error.hpp"

#include <cerrno>
#include <cstring>
#include <fmt/format.h>
#include <unistd.h>
#include <zlib.h>

namespace wlb {

atomic_writer::atomic_writer(std::string path, bool gzip) : m_path(std::move(path)) {
    if (m_path == "-") {
        if (gzip)
            throw usage_error("cannot write gzip-compressed output to standard output");
        m_stdout = true;
        m_file = stdout;
        return;
    }
    m_tmp = fmt::format("{}.tmp.{}", m_path, ::getpid());
    if (gzip) {
        m_gz = gzopen(m_tmp.c_str(), "wb6");
        if (!m_gz)
            throw runtime_failure(
                fmt::format("{}: cannot create: {}", m_tmp, std::strerror(errno)));
    } else {
        m_file = std::fopen(m_tmp.c_str(), "wb");
        if (!m_file)
            throw runtime_failure(
                fmt::format("{}: cannot create: {}", m_tmp, std::strerror(errno)));
    }
}

atomic_writer::~atomic_writer() {
    if (m_stdout)
        return;
    if (m_gz)
        gzclose(static_cast<gzFile>(m_gz));
    if (m_file)
        std::fclose(m_file);
    if (!m_tmp.empty())
        std::remove(m_tmp.c_str()); // not committed: drop the partial file
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
            throw runtime_failure(fmt::format("{}: closing the gzip stream failed", m_path));
    } else if (m_file) {
        int rc = std::fclose(m_file);
        m_file = nullptr;
        if (rc != 0)
            throw runtime_failure(
                fmt::format("{}: close failed: {}", m_path, std::strerror(errno)));
    }
    if (std::rename(m_tmp.c_str(), m_path.c_str()) != 0)
        throw runtime_failure(fmt::format("{}: cannot rename {} into place: {}", m_path, m_tmp,
                                          std::strerror(errno)));
    m_tmp.clear();
}

void write_file_atomic(const std::string& path, std::string_view content) {
    atomic_writer w(path, false);
    w.write(content);
    w.commit();
}

} // namespace wlb
