// `wlbtune profile` and `wlbtune trigger` as a library (docs/profile.md): run a user's command with
// the injection library in every process it starts, then gather what they captured into a trace
// `wlbtune analyze` reads; and switch capture on in an armed job.
//
// Where the injection library is found: libwlbtune_inject.so beside the wlbtune executable (the
// build puts it there; a bundle carries it there), or --library PATH. In a build without CUDA
// there is none: the command runs without capture and the manifest says so.
#pragma once

#include "profiler/capture/inject/control_file.hpp"
#include "profiler/capture/inject/inject_config.hpp"
#include "profiler/capture/launch/capture_manifest.hpp"
#include "profiler/capture/launch/job_process.hpp"

#include <optional>
#include <string>
#include <vector>

namespace wlb::profiler {

inline constexpr std::string_view inject_library_name = "libwlbtune_inject.so";

struct profile_options {
    std::vector<std::string> command;
    std::string output_dir; ///< "" : wlbtune-profile-YYYYmmdd-HHMMSS in the working directory
    inject_config capture;  ///< mode, steps, seconds, activities, NVTX, step names, bounds
    std::string session;    ///< "" : from the launcher (srun, mpirun) or a new one
    std::string layout;     ///< "" : from the job's flags
    std::string order;
    std::string library;   ///< "" : beside the executable
    bool finalize = false; ///< only (re)write the manifest of output_dir
};

/// The capture choices `wlbtune profile` takes as words, before they are checked.
struct capture_flags {
    bool armed = false;                ///< --armed
    std::string capture_range = "all"; ///< --capture-range: all or profiler-api
    std::string activities = "all";    ///< --activities
    bool no_nvtx = false;              ///< --no-nvtx
    std::string step_source = "auto";  ///< --step-source
    int buffer_mb = 4;                 ///< --buffer-mb
};

/// Sets `c`'s mode, activities, NVTX, step source and buffer size from `f`. Throws
/// wlb::usage_error for choices that contradict each other (--armed with --capture-range
/// profiler-api, --skip-steps with an armed capture) and wlb::input_error for an unknown word.
void apply_capture_flags(const capture_flags& f, inject_config& c);

struct profile_result {
    std::string dir;
    std::optional<job_exit> exit;
    bool injected = false; ///< the command ran with the injection library
    std::string library;
    std::string session;
    capture_summary summary;
    std::string analyze_command; ///< what to run next
};

/// Runs the command under capture (or, with `finalize`, only gathers `output_dir`). Throws
/// wlb::usage_error / input_error for bad options (no command, a step pattern that is not a regex,
/// another tool's CUDA_INJECTION64_PATH already set, a layout that does not parse),
/// wlb::runtime_failure when the capture directory cannot be made private and writable or the
/// injection library is missing.
profile_result profile_job(const profile_options& o);

/// The injection library beside the running executable ("" when there is none).
[[nodiscard]] std::string default_inject_library();

/// The session id of this run: the launcher's job (srun: SLURM_JOB_ID.SLURM_STEP_ID; Open MPI's
/// job id; a PMIx namespace; torchrun's run id), so every `wlbtune profile` of one job started by
/// the launcher shares it; else host, process id and time.
[[nodiscard]] std::string default_session(const env_lookup& env);

/// `wlbtune trigger DIR --steps N`: asks every process of the armed job that writes into `dir` to
/// capture N steps (or `seconds`). Throws wlb::input_error when `dir` is not an armed capture
/// directory of this user, wlb::runtime_failure when the request cannot be written.
trigger_request trigger_capture(const std::string& dir, std::int64_t steps, double seconds);

} // namespace wlb::profiler
