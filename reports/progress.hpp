// A one-line progress indicator on standard error for long runs ("simulating wlb + adaptive:
// step 120/400"), drawn only when standard error is a terminal, redrawn at most every 100 ms,
// and erased when the run ends, so that redirected output and logs never contain it.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace wlb::reports {

class progress_line {
public:
    /// Enabled when stderr is a terminal (isatty) and `enabled` is true.
    explicit progress_line(bool enabled = true);
    ~progress_line();
    progress_line(const progress_line&) = delete;
    progress_line& operator=(const progress_line&) = delete;

    /// Shows "`label`: step done/total" (total 0: unknown, "step done").
    void update(const std::string& label, std::int64_t done, std::int64_t total);
    /// Erases the line.
    void clear();

private:
    bool m_enabled = false;
    bool m_shown = false;
    std::chrono::steady_clock::time_point m_last{};
};

} // namespace wlb::reports
