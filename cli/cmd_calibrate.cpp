// wlbtune calibrate: measure what the cost model needs on this machine (or read it from a
// captured run's trace), fit the hardware description (tuner/job/calibrate_job.hpp), write the
// hardware file --hardware takes and report it against the preset it replaces.
#include "cli/command.hpp"
#include "cli/execution_options.hpp"
#include "reports/calibrate_report.hpp"
#include "reports/progress.hpp"
#include "runtime/comm/communicator.hpp"

#include <fmt/format.h>
#include <memory>

namespace wlb::cli {
namespace {

struct calibrate_options {
    tuner::calibrate_request request;
    std::string output, json, precision = "float";
    bool progress = false;
};

void run_calibrate(calibrate_options& o, const command_output& out) {
    auto& r = o.request;
    r.numbers = runtime::parse_precision(o.precision);
    std::unique_ptr<runtime::communicator> world;
    if (r.from_trace.empty())
        world = runtime::make_world_communicator({});
    const bool main_rank = world == nullptr || world->rank() == 0;
    reports::progress_line progress(main_rank, o.progress && main_rank);
    r.progress = [&](const runtime::probe_progress& p) {
        progress.show(fmt::format("calibrating: {} {}/{}", p.what, p.done, p.total));
    };
    const auto result = tuner::calibrate_job(r, world.get());
    progress.clear();
    if (!main_rank)
        return;
    out.output(result.hardware_file.dump(2) + "\n");
    out.json(reports::calibrate_json(result, o.output));
    if (o.output != "-")
        out.text(reports::calibrate_text(result, o.output));
}

} // namespace

registered_command register_calibrate(CLI::App& app, command_output& out) {
    auto o = std::make_shared<calibrate_options>();
    auto& r = o->request;
    auto* sub = app.add_subcommand(
        "calibrate", "Measure the cost model's rates on this machine (GEMMs at the model's layer "
                     "shapes, attention by chunk length and document mix, element-wise work, "
                     "collectives) or fit them from a captured run's trace; write a hardware "
                     "file for --hardware");
    sub->add_option("--backend", r.backend,
                    "What to measure: cpu (the CPU backend's kernels, "
                    "MPI between ranks) or cuda (the CUDA kernels, NCCL)")
        ->check(CLI::IsMember({"cpu", "cuda"}));
    auto* model = sub->add_option("--model", r.model,
                                  "Model whose layer shapes are measured: a preset or a JSON "
                                  "file (with --from-trace: the trace's own by default)");
    sub->add_option("--base", r.base,
                    "Preset or hardware file the result replaces (fields not measured are kept "
                    "from it; a file: e.g. an earlier calibration); "
                    "default: cpu-dev-vm for cpu, h200 or h100-sxm by the GPU's name for cuda");
    sub->add_option("-o,--output", o->output,
                    "Write the hardware file (wlbtune.hardware/1) here ('-' for stdout)");
    sub->add_option("--from-trace", r.from_trace,
                    "Fit from this trace directory (wlbtune.trace/1 with batches.json: wlbtune "
                    "run --trace-dir, simulate --trace-dir) instead of measuring");
    sub->add_option("--repeats", r.repeats, "Interleaved repeats of every probe (median kept)")
        ->check(CLI::PositiveNumber);
    add_precision_option(*sub, o->precision, "CPU numbers: float or double (as run's)");
    sub->add_flag("--quick", r.quick, "Small probes (a smoke test; not for predictions)");
    add_progress_flag(*sub, o->progress);
    add_json_option(*sub, o->json, std::string(reports::calibrate_schema));
    sub->footer("Examples:\n"
                "  mpirun -np 2 wlbtune calibrate --model small -o cpu.json\n"
                "  wlbtune simulate --hardware cpu.json --model small --layout cp=2 --context 4k\n"
                "  wlbtune calibrate --from-trace trace/ -o from-trace.json\n"
                "  wlbtune calibrate --backend cuda --model 7b -o h100.json");
    return {sub, [o, model, &out] {
                out.set_json(o->json);
                o->request.model_given = model->count() > 0;
                out.set_output(o->output);
                run_calibrate(*o, out);
            }};
}

} // namespace wlb::cli
