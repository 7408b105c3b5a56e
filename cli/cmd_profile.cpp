// wlbtune profile [options] -- CMD ARGS...: run a user's unmodified job (torchrun, mpirun, srun,
// python) with the injection library in every process it starts, and gather what they captured
// into a trace for wlbtune analyze (profiler/capture/launch/profile_job.hpp, docs/profile.md).
// The command's exit status is wlbtune's.
#include "base/error.hpp"
#include "cli/command.hpp"
#include "profiler/capture/inject/inject_config.hpp"
#include "profiler/capture/launch/profile_job.hpp"
#include "reports/profile_report.hpp"

#include <cstdio>
#include <fmt/format.h>
#include <memory>

namespace wlb::cli {
namespace {

struct profile_cli {
    profiler::profile_options o;
    std::vector<std::string> command;
    bool armed = false;
    std::string capture_range = "all";
    std::string activities = "all";
    bool no_nvtx = false;
    std::string step_source = "auto";
    int buffer_mb = 4;
    int status = 0;
};

void run_profile(profile_cli& c) {
    auto& o = c.o;
    o.command = c.command;
    auto& cap = o.capture;
    if (c.armed && c.capture_range != "all")
        throw usage_error("--armed and --capture-range profiler-api both say when to capture; "
                          "give one");
    if (c.capture_range == "profiler-api")
        cap.mode = profiler::capture_mode::profiler_api;
    else if (c.capture_range != "all")
        throw input_error(
            fmt::format("--capture-range \"{}\": expected all or profiler-api", c.capture_range));
    if (c.armed)
        cap.mode = profiler::capture_mode::armed;
    if (cap.skip_steps > 0 && cap.mode != profiler::capture_mode::full)
        throw usage_error("--skip-steps is for a capture from the start; an armed capture starts "
                          "when triggered");
    std::string problem;
    if (!profiler::parse_activities(c.activities, cap.activities, problem))
        throw input_error("--activities: " + problem);
    if (!profiler::parse_step_source(c.step_source, cap.steps_from))
        throw input_error(fmt::format("--step-source \"{}\": expected auto, nvtx, profiler-api, "
                                      "nccl or none",
                                      c.step_source));
    cap.nvtx = !c.no_nvtx;
    cap.buffer_bytes = static_cast<std::size_t>(c.buffer_mb) << 20;
    const auto r = profiler::profile_job(o);
    std::fputs(reports::profile_text(r).c_str(), stderr);
    std::fflush(stderr);
    c.status = r.exit ? r.exit->status() : 0;
}

} // namespace

registered_command register_profile(CLI::App& app, command_output& /*out*/) {
    auto c = std::make_shared<profile_cli>();
    auto& cap = c->o.capture;
    auto* sub = app.add_subcommand(
        "profile", "Run a training job (torchrun, mpirun, srun, python ...) unmodified and capture "
                   "every process's CUDA activity and NVTX ranges for wlbtune analyze");
    sub->add_option("command", c->command, "The command to profile and its arguments (after --)");
    sub->add_option("-o,--output", c->o.output_dir,
                    "Capture directory, created private (0700) (default: "
                    "wlbtune-profile-DATE-TIME here)");
    sub->add_flag("--armed", c->armed,
                  "Start with capture off; `wlbtune trigger DIR` turns it on for some steps");
    sub->add_option("--capture-range", c->capture_range,
                    "all (from CUDA's start), or profiler-api (between the job's "
                    "cudaProfilerStart and cudaProfilerStop, as Megatron-LM's --profile calls "
                    "them)");
    sub->add_option("--steps", cap.steps,
                    "Capture this many steps, then stop (0: until the job ends)");
    sub->add_option("--skip-steps", cap.skip_steps, "Let this many steps pass first (warm-up)");
    sub->add_option("--seconds", cap.seconds, "Capture at most this long (0: no limit)");
    sub->add_option("--window-seconds", cap.window_seconds,
                    "A triggered window's length when the job shows no step marker (no NVTX step "
                    "range, no cudaProfilerStart/Stop)");
    sub->add_option("--activities", c->activities,
                    "Activity kinds: kernel,memcpy,memset,sync or all (kernels always)");
    sub->add_flag("--no-nvtx", c->no_nvtx, "Ignore the job's NVTX ranges");
    sub->add_option("--step-range", cap.step_range,
                    "Regex: NVTX ranges whose name matches are steps (its first group, when "
                    "digits, is the step id); default: ProfilerStep#N, step, train_step, "
                    "iteration ...");
    sub->add_option("--step-source", c->step_source,
                    "Where steps come from: auto (NVTX step ranges, else cudaProfilerStart/Stop "
                    "spans, else the period of the NCCL kernels), nvtx, profiler-api, nccl, none");
    sub->add_option("-l,--layout", c->o.layout,
                    "The job's layout tp=,cp=,pp=,dp= for the manifest (default: from its "
                    "Megatron-LM or TorchTitan flags, else every rank a DP replica)");
    sub->add_option("--order", c->o.order, "Axis order of --layout, innermost first");
    sub->add_option("--library", c->o.library,
                    "The injection library (default: libwlbtune_inject.so beside wlbtune)");
    sub->add_option(
        "--cupti", cap.cupti_library,
        "libcupti to load into processes that have none loaded (default: the one "
        "PyTorch loaded, else libcupti.so.13 on the loader's path, else the toolkit's)");
    sub->add_option("--session", c->o.session,
                    "Session id shared by several wlbtune profile writing into one directory "
                    "(default: the launcher's job id under srun or mpirun)");
    sub->add_option("--poll-ms", cap.poll_ms, "How often processes look for a trigger (ms)");
    sub->add_option("--buffer-mb", c->buffer_mb, "CUPTI activity buffer size (MiB)")
        ->check(CLI::Range(1, 1024));
    sub->add_option("--buffers", cap.max_buffers, "CUPTI activity buffers per process at most")
        ->check(CLI::Range(1, 4096));
    sub->add_option("--max-records", cap.max_records,
                    "Activity records a process keeps at most; more are dropped and counted");
    sub->add_flag("--finalize", c->o.finalize,
                  "Only gather the process reports already in --output into its manifest (after "
                  "a job whose wrappers ended before all its processes had written)");
    sub->footer("Examples:\n"
                "  wlbtune profile -o cap -- torchrun --nproc-per-node 8 train.py\n"
                "  wlbtune profile --armed -o cap -- srun python train.py   # then: wlbtune "
                "trigger cap --steps 3\n"
                "The command's exit status is wlbtune's. Then: wlbtune analyze cap");
    return {sub, [c] { run_profile(*c); },
            [c] {
                return c->status;
            }};
}

} // namespace wlb::cli
