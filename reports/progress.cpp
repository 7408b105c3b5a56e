#include "reports/progress.hpp"

#include <cstdio>
#include <fmt/format.h>
#include <unistd.h>

namespace wlb::reports {

progress_line::progress_line(bool enabled) : m_enabled(enabled && ::isatty(STDERR_FILENO) == 1) {}

progress_line::~progress_line() {
    clear();
}

void progress_line::update(const std::string& label, std::int64_t done, std::int64_t total) {
    if (!m_enabled)
        return;
    const auto now = std::chrono::steady_clock::now();
    if (m_shown && done != total && now - m_last < std::chrono::milliseconds(100))
        return;
    m_last = now;
    const auto text = total > 0 ? fmt::format("{}: step {}/{}", label, done, total)
                                : fmt::format("{}: step {}", label, done);
    fmt::print(stderr, "\r\033[K{}", text);
    std::fflush(stderr);
    m_shown = true;
}

void progress_line::clear() {
    if (!m_shown)
        return;
    fmt::print(stderr, "\r\033[K");
    std::fflush(stderr);
    m_shown = false;
}

} // namespace wlb::reports
