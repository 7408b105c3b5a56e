// wlbtune run: execute real 4D-parallel training steps (forward, backward, gradient reduction,
// optimizer) on the ranks mpirun started (tuner/job/run_job.hpp, run_execute.hpp), or every rank
// of the layout on one GPU (--backend cuda --emulate); print per-step time and loss beside the
// simulator's prediction, and write the job's trace (wlbtune.trace/1) and, on GPUs, the CUPTI
// capture beside it.
#include "base/atomic_file.hpp"
#include "base/error.hpp"
#include "cli/command.hpp"
#include "cli/job_options.hpp"
#include "profiler/capture/run_capture.hpp"
#include "reports/run_report.hpp"
#include "runtime/device/attention_choice.hpp"
#include "tuner/job/run_execute.hpp"

#include <memory>

namespace wlb::cli {
namespace {

struct run_options {
    job_option_set job;
    tuner::run_request request;
    std::string backend = "cpu", precision = "float", trace, json, attention = "auto",
                emulated_comm = "measured";
    bool emulate = false, no_cupti = false;
    int device = -1;
    double watchdog_seconds = runtime::default_watchdog_seconds;
};

void run_run(run_options& o, const command_output& out) {
    // Everything that can be refused is refused before MPI starts and before any work.
    const auto job = o.job.resolve();
    auto& r = o.request;
    r.backend = runtime::parse_backend(o.backend);
    r.device = {o.emulate, runtime::parse_attention_choice(o.attention), o.device,
                o.watchdog_seconds};
    r.comm = o.emulated_comm == "modelled" ? tuner::emulated_comm::modelled
                                           : tuner::emulated_comm::measured;
    r.numbers = runtime::parse_precision(o.precision);
    if (!o.trace.empty() && r.trace_dir.empty())
        throw usage_error("--trace needs --trace-dir (the Perfetto file is exported from the "
                          "trace directory the ranks write)");
    tuner::run_session session(job, r);
    const auto capture =
        r.backend == runtime::backend_kind::cuda && !r.trace_dir.empty() && !o.no_cupti
            ? profiler::run_capture::make_default()
            : nullptr;
    session.start(capture ? capture->factory() : runtime::capture_factory{});
    reports::run_report report(out,
                               reports::run_context_of(job, session.run(), session.backend_name(),
                                                       r.numbers, session.launcher(), r.trace_dir),
                               session.run(), session.main_rank());
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
    sub->add_option("--backend", o->backend, "Execution backend: cpu or cuda");
    auto& v = o->job.values; // the small decoders and the CPU preset run here
    v.model = "tiny", v.hardware = "cpu-dev-vm", v.layout = "tp=1,cp=1,pp=1,dp=1", v.context = "4k";
    o->job.add(*sub,
               job_group::model | job_group::data | job_group::stream | job_group::packing |
                   job_group::sharding | job_group::schedule | job_group::config,
               "-p,--packing");
    sub->add_option("-n,--steps", o->request.steps, "Training steps to run")->check(positive());
    sub->add_option("--precision", o->precision, "Numbers of the cpu backend: float or double")
        ->check(CLI::IsMember({"float", "double"}));
    sub->add_option("--seed", o->request.seed, "Seed of the initial parameters")
        ->check(non_negative());
    sub->add_option("--learning-rate", o->request.learning_rate, "SGD learning rate")
        ->check(positive());
    sub->add_option("--watchdog", o->watchdog_seconds,
                    "Seconds a collective or receive may take before the job is aborted")
        ->check(positive());
    sub->add_flag("--emulate", o->emulate,
                  "cuda: run every rank of the layout in this process on one GPU, one rank at a "
                  "time, with real data and kernels; transfers as device copies");
    sub->add_option("--emulated-comm", o->emulated_comm,
                    "--emulate: time transfers by their measured device copies or by the cost "
                    "model")
        ->check(CLI::IsMember({"measured", "modelled"}));
    sub->add_option("--attention", o->attention,
                    "cuda: attention kernels: auto, cudnn, mma (ours, tensor cores) or simt "
                    "(ours, scalar)");
    sub->add_option("--device", o->device,
                    "cuda: CUDA device (default: the launcher's node-local rank; --emulate: 0)");
    sub->add_flag("--no-cupti", o->no_cupti,
                  "cuda: no CUPTI capture beside the trace (NVTX ranges neither)");
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
