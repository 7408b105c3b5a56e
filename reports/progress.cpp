#include "reports/progress.hpp"

#include <cstdio>
#include <fmt/format.h>
#include <unistd.h>

namespace wlb::reports {

progress_line::progress_line(bool enabled, bool log_lines) {
    const bool tty = ::isatty(STDERR_FILENO) == 1;
    m_tty = enabled && tty;
    m_log = enabled && log_lines && !tty;
}

progress_line::~progress_line() {
    clear();
}

void progress_line::update(const std::string& label, std::int64_t done, std::int64_t total) {
    show(total > 0 ? fmt::format("{}: step {}/{}", label, done, total)
                   : fmt::format("{}: step {}", label, done),
         total > 0 && done == total);
}

void progress_line::show(const std::string& text, bool last) {
    if (!m_tty && !m_log)
        return;
    const auto now = std::chrono::steady_clock::now();
    const auto every = m_tty ? std::chrono::milliseconds(100) : std::chrono::milliseconds(2000);
    if (m_shown && !last && now - m_last < every)
        return;
    m_last = now;
    if (m_tty)
        fmt::print(stderr, "\r\033[K{:.{}}", text, 160);
    else
        fmt::print(stderr, "{}\n", text);
    std::fflush(stderr);
    m_shown = true;
}

void progress_line::clear() {
    if (!m_shown || !m_tty)
        return;
    fmt::print(stderr, "\r\033[K");
    std::fflush(stderr);
    m_shown = false;
}

} // namespace wlb::reports
