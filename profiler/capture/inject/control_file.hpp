// Capture on demand (`wlbtune profile --armed`, `wlbtune trigger DIR`): the trigger protocol.
//
// `wlbtune trigger DIR --steps N` replaces DIR/control.json (atomically, mode 0600) with a
// request that carries an id one above the previous request's:
//
//   {"schema": "wlbtune.control/1", "id": 3, "steps": 2, "seconds": 0}
//
// Every process of the job polls that file off its training thread (the injection library's
// control thread, every WLBTUNE_POLL_MS) and opens one capture window per new id: for `steps`
// steps (counted on the process's live step marker: NVTX step ranges or cudaProfilerStart/Stop),
// else for `seconds`, else for the configured default duration. A request that arrives while a
// window is open is served when it closes. Several triggers in one run give several windows.
//
// Only the job's user may switch capture on: the directory must be private (0700, owned by the
// user, not a symbolic link) and the file owned by the user, writable by nobody else and not a
// symbolic link; anything else is ignored with one warning (profiler/capture/inject/
// private_files.hpp).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>

namespace wlb::profiler {

inline constexpr std::string_view control_file_name = "control.json";
inline constexpr std::string_view control_schema = "wlbtune.control/1";

struct trigger_request {
    std::int64_t id = 0;    ///< > 0; a new id is a new window
    std::int64_t steps = 0; ///< 0: by seconds
    double seconds = 0.0;   ///< 0: the process's default window duration
    /// When the request was written (the file's modification time, CLOCK_REALTIME); not in the
    /// file. 0: unknown.
    std::int64_t written_ns = 0;
    friend bool operator==(const trigger_request&, const trigger_request&) = default;
};

[[nodiscard]] std::string control_text(const trigger_request& r);
/// The request in `text`, or nullopt with `problem` saying what is malformed.
[[nodiscard]] std::optional<trigger_request> parse_control(std::string_view text,
                                                           std::string& problem);

/// What `wlbtune trigger` does: checks that `dir` is a private capture directory of `uid`,
/// reads the previous request (if any) and writes the next one. Returns it, or nullopt with
/// `problem` set.
[[nodiscard]] std::optional<trigger_request> write_trigger(const std::string& dir, uid_t uid,
                                                           std::int64_t steps, double seconds,
                                                           std::string& problem);

/// The library's side: what the control file asks for now, after the checks. Each distinct
/// problem is reported once through `problem` (empty otherwise); a refused or malformed file
/// reads as no request.
class control_reader {
public:
    control_reader(std::string dir, uid_t uid);
    /// The current request (nullopt when there is none or it was refused).
    [[nodiscard]] std::optional<trigger_request> poll(std::string& problem);

private:
    std::string m_dir;
    std::string m_path;
    uid_t m_uid;
    std::string m_last_problem;
};

} // namespace wlb::profiler
