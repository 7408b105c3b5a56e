// wlbtune profile [options] -- CMD ARGS...: run a user's unmodified job (torchrun, mpirun, srun,
// python) with the injection library in every process it starts, and gather what they captured
// into a trace for wlbtune analyze (profiler/capture/launch/profile_job.hpp, docs/profile.md).
// The command's exit status is wlbtune's.
#include "cli/capture_options.hpp"
#include "cli/command.hpp"
#include "reports/profile_report.hpp"

#include <cstdio>
#include <memory>

namespace wlb::cli {
namespace {

struct profile_cli {
    profiler::profile_options o;
    profiler::capture_flags flags;
    int status = 0;
};

void run_profile(profile_cli& c) {
    profiler::apply_capture_flags(c.flags, c.o.capture);
    const auto r = profiler::profile_job(c.o);
    std::fputs(reports::profile_text(r).c_str(), stderr);
    std::fflush(stderr);
    c.status = r.exit ? r.exit->status() : 0;
}

} // namespace

registered_command register_profile(CLI::App& app, command_output& /*out*/) {
    auto c = std::make_shared<profile_cli>();
    auto* sub = app.add_subcommand(
        "profile", "Run a training job (torchrun, mpirun, srun, python ...) unmodified and capture "
                   "every process's CUDA activity and NVTX ranges for wlbtune analyze");
    sub->add_option("command", c->o.command, "The command to profile and its arguments (after --)");
    sub->add_option("-o,--output", c->o.output_dir,
                    "Capture directory, created private (0700) (default: "
                    "wlbtune-profile-DATE-TIME here)");
    add_capture_options(*sub, c->flags, c->o.capture);
    sub->add_option("-l,--layout", c->o.layout,
                    "The job's layout tp=,cp=,pp=,dp= for the manifest (default: from its "
                    "Megatron-LM or TorchTitan flags, else every rank a DP replica)");
    sub->add_option("--order", c->o.order, "Axis order of --layout, innermost first");
    sub->add_option("--library", c->o.library,
                    "The injection library (default: libwlbtune_inject.so beside wlbtune)");
    sub->add_option("--session", c->o.session,
                    "Session id shared by several wlbtune profile writing into one directory "
                    "(default: the launcher's job id under srun or mpirun)");
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
