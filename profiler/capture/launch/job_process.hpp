// Runs a user's command as a child of wlbtune (`wlbtune profile -- CMD ARGS...`): with extra
// environment variables (the injection's), its exit status passed back, and signals sent to
// wlbtune by another process (kill, a batch scheduler's SIGTERM before a time limit) forwarded
// to it. Signals from the terminal (Ctrl-C) reach the child directly, as it shares wlbtune's
// process group; they are not forwarded a second time, and wlbtune outlives them to finish the
// capture. POSIX; host code.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace wlb::profiler {

struct job_command {
    std::vector<std::string> argv; ///< argv[0] is searched on PATH when it has no '/'
    std::vector<std::pair<std::string, std::string>> set_env; ///< added to (or replacing in)
                                                              ///< this process's environment
};

struct job_exit {
    int exit_code = 0; ///< when it exited
    int signal = 0;    ///< the signal that ended it (0: it exited)
    double seconds = 0.0;
    /// As a shell reports it: the exit code, or 128 + the signal.
    [[nodiscard]] int status() const noexcept { return signal != 0 ? 128 + signal : exit_code; }
};

/// The signals forwarded to the child.
[[nodiscard]] const std::vector<int>& forwarded_signals();

/// Starts the command and waits for it. Throws wlb::usage_error for an empty command,
/// wlb::input_error when it cannot be started (not found, not executable: the message says which
/// and why), wlb::runtime_failure when the system refuses a process.
[[nodiscard]] job_exit run_job(const job_command& command);

} // namespace wlb::profiler
