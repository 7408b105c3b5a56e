// Progress of long work on standard error ("simulating wlb + adaptive: step 120/400", the tuner's
// search), the same for every command: on a terminal one line, rewritten in place at most every
// 100 ms and erased when the work ends, so that redirected output and logs never contain it;
// elsewhere nothing, unless asked for log lines (tune --progress): then one line every 2 s.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace wlb::reports {

class progress_line {
public:
    /// Draws on a terminal (isatty(stderr)) when `enabled`; with `log_lines`, also prints a
    /// plain line every 2 s where stderr is not a terminal.
    explicit progress_line(bool enabled = true, bool log_lines = false);
    ~progress_line();
    progress_line(const progress_line&) = delete;
    progress_line& operator=(const progress_line&) = delete;

    /// Shows "`label`: step done/total" (total 0: unknown, "step done").
    void update(const std::string& label, std::int64_t done, std::int64_t total);
    /// Shows `text` (cut to 160 columns on a terminal); `last` is drawn even when throttled.
    void show(const std::string& text, bool last = false);
    /// Erases the line.
    void clear();

private:
    bool m_tty = false;
    bool m_log = false;
    bool m_shown = false;
    std::chrono::steady_clock::time_point m_last{};
};

} // namespace wlb::reports
