// wlbtune trigger DIR [--steps N | --seconds S]: switch capture on, for N steps, in every process
// of a job started with `wlbtune profile --armed -o DIR`
// (profiler/capture/inject/control_file.hpp).
#include "base/error.hpp"
#include "cli/command.hpp"
#include "profiler/capture/launch/profile_job.hpp"
#include "reports/profile_report.hpp"

#include <memory>

namespace wlb::cli {
namespace {

struct trigger_options {
    std::string dir;
    std::int64_t steps = 2;
    double seconds = 0.0;
};

void run_trigger(const trigger_options& o, const command_output& out) {
    if (o.steps < 0 || o.seconds < 0)
        throw input_error("--steps and --seconds must be >= 0");
    const auto t = profiler::trigger_capture(o.dir, o.steps, o.seconds);
    out.text(reports::trigger_text(o.dir, t));
}

} // namespace

registered_command register_trigger(CLI::App& app, command_output& out) {
    auto o = std::make_shared<trigger_options>();
    auto* sub = app.add_subcommand(
        "trigger", "Capture the next steps of a job started with wlbtune profile --armed");
    sub->add_option("dir", o->dir, "The job's capture directory (wlbtune profile -o DIR)")
        ->required();
    auto* steps = sub->add_option("--steps", o->steps, "Steps to capture in every process");
    sub->add_option("--seconds", o->seconds, "Capture for this long instead of a number of steps")
        ->excludes(steps);
    sub->footer("Example: wlbtune trigger cap --steps 3; again later for another window");
    return {sub, [o, &out] {
                trigger_options run = *o;
                if (run.seconds > 0)
                    run.steps = 0;
                run_trigger(run, out);
            }};
}

} // namespace wlb::cli
