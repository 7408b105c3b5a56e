// wlbtune run: execute real 4D-parallel training steps (forward, backward, gradient reduction,
// optimizer) on the ranks mpirun started (tuner/job/run_job.hpp), print per-step measured time
// and loss beside the simulator's prediction, and write the job's trace (wlbtune.trace/1).
#include "base/error.hpp"
#include "cli/command.hpp"
#include "cli/job_options.hpp"
#include "reports/perfetto.hpp"
#include "reports/run_report.hpp"
#include "runtime/train/make_backend.hpp"

#include <memory>

namespace wlb::cli {
namespace {

struct run_options {
    job_option_set job;
    tuner::run_request request;
    std::string backend = "cpu", precision = "float", trace, json;
    double watchdog_seconds = runtime::default_watchdog_seconds;
};

void run_run(run_options& o, const command_output& out) {
    // Everything that can be refused is refused before MPI starts and before any work.
    const auto job = o.job.resolve();
    const auto launch = tuner::check_launch(job.layout);
    const auto kind = runtime::parse_backend(o.backend);
    runtime::check_backend_available(kind);
    if (!o.trace.empty() && o.request.trace_dir.empty())
        throw usage_error("--trace needs --trace-dir (the Perfetto file is exported from the "
                          "trace directory the ranks write)");
    auto& r = o.request;
    r.numbers = runtime::parse_precision(o.precision);
    const auto run = tuner::prepare_run(job, r);

    auto world = runtime::make_world_communicator({.watchdog_seconds = o.watchdog_seconds});
    auto backend = tuner::make_run_backend(kind, *world, job, run, r);
    const bool main_rank = world->rank() == 0;
    const auto ctx =
        reports::run_context_of(job, run, backend->name(), r.numbers, launch.launcher, r.trace_dir);
    if (main_rank)
        out.text(reports::run_header_text(ctx));
    std::vector<reports::run_step_row> rows;
    const auto result =
        tuner::execute_run(*backend, *world, job, run, r, [&](std::size_t i, const auto& m) {
            rows.push_back(reports::make_run_step_row(
                m, run.batches.steps[i], run.predicted_seconds[i], run.batches.applied[i]));
            if (main_rank)
                out.text(reports::run_step_text(rows.back(), i == 0));
        });
    if (!main_rank)
        return;
    if (!o.trace.empty())
        reports::write_perfetto(runtime::trace_reader(r.trace_dir).read_all(), o.trace,
                                "measured (" + ctx.backend + ", host timers)");
    out.json(reports::run_json(ctx, rows, result.trace_events));
    out.text(reports::run_summary_text(ctx, rows, result.trace_events) +
             (o.trace.empty() ? ""
                              : "Perfetto trace (measured): " + o.trace +
                                    " (open in https://ui.perfetto.dev)\n"));
}

} // namespace

registered_command register_run(CLI::App& app, command_output& out) {
    auto o = std::make_shared<run_options>();
    auto* sub = app.add_subcommand(
        "run", "Run real 4D-parallel training steps on the ranks mpirun started (CPU backend: "
               "OpenBLAS kernels, MPI collectives); print measured step time and loss beside the "
               "simulator's prediction; capture a trace");
    sub->add_option("--backend", o->backend, "Execution backend: cpu (cuda: not built yet)");
    auto& v = o->job.values; // the small decoders and the CPU preset run here
    v.model = "tiny", v.hardware = "cpu-dev-vm", v.layout = "tp=1,cp=1,pp=1,dp=1", v.context = "4k";
    o->job.add(*sub,
               job_group::model | job_group::data | job_group::stream | job_group::packing |
                   job_group::sharding | job_group::schedule | job_group::config,
               "-p,--packing");
    sub->add_option("-n,--steps", o->request.steps, "Training steps to run")
        ->check(CLI::PositiveNumber);
    sub->add_option("--precision", o->precision, "Numbers: float or double")
        ->check(CLI::IsMember({"float", "double"}));
    sub->add_option("--seed", o->request.seed, "Seed of the initial parameters");
    sub->add_option("--learning-rate", o->request.learning_rate, "SGD learning rate");
    sub->add_option("--watchdog", o->watchdog_seconds,
                    "Seconds a collective or receive may take before the job is aborted")
        ->check(CLI::PositiveNumber);
    add_trace_options(*sub, o->trace, o->request.trace_dir);
    add_json_option(*sub, o->json, "wlbtune.run/1");
    sub->footer("Examples:\n  wlbtune run --model tiny --steps 3\n"
                "  mpirun -np 2 wlbtune run --layout cp=2 --model small --context 8k --sharding "
                "per-doc --trace-dir trace/\n"
                "  mpirun -np 8 wlbtune run --layout tp=2,cp=2,pp=2 --packing wlb --json run.json");
    return {sub, [o, &out] {
                out.set_json(o->json);
                run_run(*o, out);
            }};
}

} // namespace wlb::cli
