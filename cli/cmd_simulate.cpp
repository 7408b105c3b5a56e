// wlbtune simulate: simulate training steps of a 4D-parallel layout with the cost model and
// report step time, bubble, imbalance, the critical path and the slowest ranks; optionally a
// Perfetto trace and the wlbtune.trace/1 directory. Every figure is simulated.
#include "cli/command.hpp"
#include "reports/perfetto.hpp"
#include "reports/simulate_report.hpp"
#include "runtime/atomic_file.hpp"
#include "runtime/error.hpp"
#include "runtime/sharded_batch_io.hpp"
#include "tuner/hardware.hpp"
#include "tuner/model.hpp"
#include "tuner/simulate_job.hpp"

#include <fmt/format.h>
#include <memory>
#include <nlohmann/json.hpp>

namespace wlb::cli {
namespace {

struct simulate_options {
    std::string batch;
    std::string model = "7b";
    std::string hardware = "h100-sxm";
    std::string layout = "tp=8,cp=2,pp=4,dp=1";
    std::string order = std::string(runtime::layout::default_order);
    std::string schedule = "auto";
    std::string partition = "even";
    int steps = 0;
    std::vector<std::string> inject;
    double bucket_params = 40e6;
    bool no_overlap = false;
    std::string trace;
    std::string trace_dir;
    std::string json;
};

void run_simulate(const simulate_options& o) {
    const auto l = runtime::layout::parse(o.layout, o.order);
    const tuner::cost_model costs(tuner::load_model(o.model), tuner::load_hardware(o.hardware), l);
    auto steps = runtime::read_sharded_batch(o.batch);
    if (o.steps > 0 && static_cast<std::size_t>(o.steps) < steps.size())
        steps.resize(static_cast<std::size_t>(o.steps));
    tuner::simulate_job_options job;
    job.plan.schedule = runtime::parse_schedule(o.schedule, l.vpp());
    job.plan.partition =
        runtime::make_stage_partition(o.partition, costs.model().layers, l.pp() * l.vpp());
    job.plan.bucket_params = o.bucket_params;
    job.plan.overlap_grad_reduce = !o.no_overlap;
    for (const auto& spec : o.inject) {
        job.faults.push_back(runtime::parse_fault(spec));
        runtime::validate_fault(job.faults.back(), l);
    }
    job.keep_trace = !o.trace.empty() || !o.trace_dir.empty();
    const auto result = tuner::simulate_job(costs, steps, job);

    reports::simulate_context context;
    context.model = costs.model().name;
    context.hardware = costs.hardware().name;
    context.schedule = job.plan.schedule.describe(l.pp(), l.vpp());
    context.partition = job.plan.partition.describe();
    for (const auto& f : job.faults)
        context.faults.push_back(f.describe());
    context.inputs.push_back(runtime::identify_file(o.batch));
    if (!o.trace.empty())
        reports::write_perfetto(result.trace, o.trace, "simulated");
    if (!o.trace_dir.empty()) {
        auto header = runtime::report_header(runtime::trace_schema, context.inputs);
        runtime::write_trace_dir(o.trace_dir, result.trace, &header);
    }
    if (o.json == "-") {
        fmt::print("{}\n", reports::simulate_json(costs, context, result).dump(2));
        return;
    }
    if (!o.json.empty())
        runtime::write_file_atomic(o.json,
                                   reports::simulate_json(costs, context, result).dump(2) + "\n");
    fmt::print("{}", reports::simulate_text(costs, context, result));
    if (!o.trace.empty())
        fmt::print("\nPerfetto trace (simulated): {} (open in https://ui.perfetto.dev)\n", o.trace);
    if (!o.trace_dir.empty())
        fmt::print("trace directory (wlbtune.trace/1, simulated): {}\n", o.trace_dir);
}

} // namespace

registered_command register_simulate(CLI::App& app, error_sink& sink) {
    auto o = std::make_shared<simulate_options>();
    auto* sub = app.add_subcommand(
        "simulate", "Simulate 4D-parallel training steps with the cost model: step time, bubble, "
                    "imbalance, critical path, slowest ranks, Perfetto trace (all simulated)");
    sub->add_option("--batch", o->batch,
                    "Sharded global batches to simulate (JSON, schema wlbtune.sharded_batch/1)")
        ->required();
    sub->add_option("-m,--model", o->model, "Model preset (550m, 7b, 30b, 70b, llama3-*) or JSON")
        ->capture_default_str();
    sub->add_option("--hardware", o->hardware, "Hardware preset (h100-sxm, h200) or JSON")
        ->capture_default_str();
    sub->add_option("-l,--layout", o->layout, "Parallel degrees tp=,cp=,pp=,dp=[,vpp=]")
        ->capture_default_str();
    sub->add_option("--order", o->order, "Axis order, innermost first")->capture_default_str();
    sub->add_option("--schedule", o->schedule,
                    "Pipeline schedule: 1f1b, interleaved (Megatron), llama3:N (N consecutive "
                    "micro-batches per model chunk), auto")
        ->capture_default_str();
    sub->add_option("--partition", o->partition,
                    "Layers per model chunk: even, llama3 (first and last one fewer) or a list "
                    "\"7,8,8,7\"")
        ->capture_default_str();
    sub->add_option("--steps", o->steps, "Simulate only the first N steps of --batch (0: all)")
        ->capture_default_str();
    sub->add_option("--inject", o->inject,
                    "Fault to inject (repeatable): slow-rank=R:F, slow-link=A-B:F, "
                    "heavy-mb=M[@D]:F, slow-stage=S:F");
    sub->add_option("--bucket-params", o->bucket_params,
                    "DP gradient bucket size in parameters per TP rank")
        ->capture_default_str();
    sub->add_flag("--no-overlap-grad-reduce", o->no_overlap,
                  "Reduce gradients after the backward instead of overlapping it");
    sub->add_option("--trace", o->trace,
                    "Write a Perfetto (Chrome JSON) trace; gzip-compressed if it ends in .gz");
    sub->add_option("--trace-dir", o->trace_dir,
                    "Write the trace as a wlbtune.trace/1 directory (one JSONL file per rank)");
    sub->add_option("--json", o->json,
                    "Write the summary (wlbtune.simulate/1) to FILE, or - for "
                    "stdout instead of the tables");
    sub->footer("Example: wlbtune simulate --batch b.json --model 7b --layout "
                "tp=8,cp=2,pp=4,dp=1 --inject slow-rank=5:1.3 --trace step.json.gz");
    return {sub, [o, &sink] {
                sink.json_stdout = o->json == "-";
                if (!o->json.empty() && o->json != "-")
                    sink.json_path = o->json;
                run_simulate(*o);
            }};
}

} // namespace wlb::cli
