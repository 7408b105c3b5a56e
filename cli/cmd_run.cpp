// wlbtune run: execute real 4D-parallel training steps (forward, backward, gradient reduction,
// optimizer) on the ranks mpirun started (tuner/job/run_job.hpp, run_execute.hpp), or every rank
// of the layout on one GPU (--backend cuda --emulate); print per-step time and loss beside the
// simulator's prediction, and write the job's trace (wlbtune.trace/1) and, on GPUs, the CUPTI
// capture beside it.
#include "base/atomic_file.hpp"
#include "base/error.hpp"
#include "cli/command.hpp"
#include "cli/execution_options.hpp"
#include "cli/job_options.hpp"
#include "reports/run_report.hpp"
#include "tuner/job/run_execute.hpp"

#include <memory>

namespace wlb::cli {
namespace {

struct run_options {
    job_option_set job;
    tuner::run_request request;
    execution_option_set execution;
    std::string trace, json;
};

void run_run(run_options& o, const command_output& out) {
    // Everything that can be refused is refused before MPI starts and before any work.
    const auto job = o.job.resolve();
    auto& r = o.request;
    o.execution.apply(r);
    if (!o.trace.empty() && r.trace_dir.empty())
        throw usage_error("--trace needs --trace-dir (the Perfetto file is exported from the "
                          "trace directory the ranks write)");
    tuner::run_session session(job, r);
    const auto capture = o.execution.capture(r);
    session.start(capture ? capture->factory() : runtime::capture_factory{});
    reports::run_report report(out, job, session, r);
    const auto result =
        session.execute([&](std::size_t i, const runtime::step_record& m) { report.step(i, m); });
    const auto captured = capture ? reports::run_capture_text(capture->finish(
                                        r.trace_dir + "/cupti", job.layout,
                                        tuner::run_sharded_steps(session.run()), session.world()))
                                  : std::string();
    report.finish(result, captured, o.trace);
}

} // namespace

registered_command register_run(CLI::App& app, command_output& out) {
    auto o = std::make_shared<run_options>();
    auto* sub = app.add_subcommand(
        "run", "Run real 4D-parallel training steps on the ranks mpirun started (cpu: OpenBLAS "
               "kernels, MPI collectives; cuda: one GPU per rank, NCCL, or --emulate every rank "
               "on one GPU); print step time and loss beside the simulator's prediction; capture "
               "a trace");
    o->execution.add_backend(*sub);
    auto& v = o->job.values; // the small decoders and the CPU preset run here
    v.model = "tiny", v.hardware = "cpu-dev-vm", v.layout = "tp=1,cp=1,pp=1,dp=1", v.context = "4k";
    o->job.add(*sub,
               job_group::model | job_group::data | job_group::stream | job_group::packing |
                   job_group::sharding | job_group::schedule | job_group::config,
               "-p,--packing");
    sub->add_option("-n,--steps", o->request.steps, "Training steps to run")->check(positive());
    sub->add_option("--seed", o->request.seed, "Seed of the initial parameters")
        ->check(non_negative());
    sub->add_option("--learning-rate", o->request.learning_rate, "SGD learning rate")
        ->check(positive());
    o->execution.add_rest(*sub);
    add_trace_options(*sub, o->trace, o->request.trace_dir);
    add_json_option(*sub, o->json, "wlbtune.run/1");
    sub->footer("Examples:\n  wlbtune run --model tiny --steps 3\n"
                "  mpirun -np 2 wlbtune run --layout cp=2 --model small --context 8k --sharding "
                "per-doc --trace-dir trace/\n"
                "  mpirun -np 8 wlbtune run --layout tp=2,cp=2,pp=2 --packing wlb --json run.json\n"
                "  wlbtune run --backend cuda --emulate --layout tp=2,cp=2,pp=2 --model small "
                "--hardware h200 --trace-dir trace/");
    return {sub, [o, &out] {
                out.set_json(o->json);
                if (!o->trace.empty())
                    wlb::check_output_path(o->trace, "--trace");
                run_run(*o, out);
            }};
}

} // namespace wlb::cli
