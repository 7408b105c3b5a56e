// wlbtune simulate: simulate training steps of a 4D-parallel layout with the cost model and
// report step time, bubble, imbalance, the critical path and the slowest ranks; optionally a
// Perfetto trace and the wlbtune.trace/1 directory. Every figure is simulated.
//
// Two inputs: --batch (sharded steps from a file) or --data (documents, packed with --packing
// and sharded with --sharding here, through tuner::evaluate). --compare runs the baseline and
// WLB-LLM's candidates on the same documents (tuner::comparison_candidates). --config applies a
// tuned config (wlbtune.config/1) in place of the packing, sharding, layout and data options.
#include "base/atomic_file.hpp"
#include "base/error.hpp"
#include "cli/command.hpp"
#include "cli/common_options.hpp"
#include "reports/html/html_report.hpp"
#include "reports/perfetto.hpp"
#include "reports/progress.hpp"
#include "reports/simulate_report.hpp"
#include "runtime/trace/sharded_batch_io.hpp"
#include "tuner/cost/cost_model.hpp"
#include "tuner/data/document_stream.hpp"
#include "tuner/data/open_document_source.hpp"
#include "tuner/search/compare_set.hpp"
#include "tuner/search/evaluate.hpp"
#include "tuner/search/simulate_job.hpp"
#include "tuner/search/tuned_config.hpp"

#include <fmt/format.h>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

namespace wlb::cli {
namespace {

struct simulate_options {
    std::string batch;
    std::string data = "default";
    job_option_values job;
    stream_option_values stream;
    packing_option_values packing;
    sharding_option_values sharding;
    bool compare = false;
    std::string schedule = "auto";
    std::string partition = "even";
    std::optional<std::int64_t> steps;
    std::vector<std::string> inject;
    double bucket_params = 40e6;
    bool no_overlap = false;
    std::string trace;
    std::string trace_dir;
    std::string json;
    std::string html;   ///< with --compare
    std::string config; ///< a tuned config (wlbtune.config/1)
    bool data_given = false;
};

struct common_setup {
    tuner::cost_model costs;
    runtime::plan_options plan;
    std::vector<runtime::fault> faults;
    reports::simulate_context context;
};

common_setup setup(const simulate_options& o,
                   const std::optional<tuner::tuned_config>& tuned = std::nullopt) {
    common_setup s{cost_model_from_options(o.job, tuned), {}, {}, {}};
    const auto& l = s.costs.layout();
    s.plan.schedule = runtime::parse_schedule(tuned ? tuned->schedule : o.schedule, l.vpp());
    s.plan.partition = runtime::make_stage_partition(tuned ? tuned->partition : o.partition,
                                                     s.costs.model().layers, l.pp() * l.vpp());
    s.plan.bucket_params = o.bucket_params;
    s.plan.overlap_grad_reduce = !o.no_overlap;
    for (const auto& spec : o.inject) {
        s.faults.push_back(runtime::parse_fault(spec));
        runtime::validate_fault(s.faults.back(), l);
    }
    s.context.model = s.costs.model().name;
    s.context.hardware = s.costs.hardware().name;
    s.context.schedule = s.plan.schedule.describe(l.pp(), l.vpp());
    s.context.partition = s.plan.partition.describe();
    for (const auto& f : s.faults)
        s.context.faults.push_back(f.describe());
    return s;
}

void write_traces(const simulate_options& o, const runtime::trace& t,
                  const reports::simulate_context& context) {
    if (!o.trace.empty())
        reports::write_perfetto(t, o.trace, "simulated");
    if (!o.trace_dir.empty()) {
        auto header = wlb::report_header(runtime::trace_schema, context.inputs);
        runtime::write_trace_dir(o.trace_dir, t, &header);
    }
}

void print_trace_notes(const simulate_options& o) {
    if (!o.trace.empty())
        fmt::print("\nPerfetto trace (simulated): {} (open in https://ui.perfetto.dev)\n", o.trace);
    if (!o.trace_dir.empty())
        fmt::print("trace directory (wlbtune.trace/1, simulated): {}\n", o.trace_dir);
}

void run_from_batch(const simulate_options& o) {
    auto s = setup(o);
    auto steps = runtime::read_sharded_batch(o.batch);
    const std::int64_t limit = o.steps.value_or(0);
    if (limit < 0)
        throw input_error(fmt::format("--steps must be >= 0, found {}", limit));
    if (limit > 0 && static_cast<std::size_t>(limit) < steps.size())
        steps.resize(static_cast<std::size_t>(limit));
    tuner::simulate_job_options job;
    job.plan = s.plan;
    job.faults = s.faults;
    job.keep_trace = !o.trace.empty() || !o.trace_dir.empty();
    const auto result = tuner::simulate_job(s.costs, steps, job);

    s.context.inputs.push_back(wlb::identify_file(o.batch));
    write_traces(o, result.trace, s.context);
    if (o.json == "-") {
        fmt::print("{}\n", reports::simulate_json(s.costs, s.context, result).dump(2));
        return;
    }
    if (!o.json.empty())
        wlb::write_file_atomic(o.json,
                               reports::simulate_json(s.costs, s.context, result).dump(2) + "\n");
    fmt::print("{}", reports::simulate_text(s.costs, s.context, result));
    print_trace_notes(o);
}

void run_from_data(const simulate_options& o) {
    const auto tuned = read_tuned_config_option(o.config);
    auto s = setup(o, tuned);
    const auto& l = s.costs.layout();
    const auto context = context_from_options(o.stream, tuned);
    const auto knobs = knobs_from_options(o.packing, context);       // --compare's own candidates
    const auto sharding = *sharding_from_options(o.sharding, tuned); // sharding_use::always
    const auto chosen_packing = packing_from_options(o.packing, context, l, tuned);
    // With a tuned config: by default the steps the tuner simulated.
    const std::int64_t steps =
        o.steps.value_or(tuned && tuned->evaluated_steps > 0 ? tuned->evaluated_steps : 64);
    if (steps < 1)
        throw input_error(fmt::format("--steps must be >= 1 with --data, found {}", steps));
    // Every input is checked before the documents are read.
    std::vector<tuner::candidate> candidates;
    if (o.compare)
        candidates = tuner::comparison_candidates(knobs, sharding, l);
    else
        candidates.push_back({chosen_packing, sharding, "chosen"});
    if (tuned) { // the tuned configuration is the chosen one, beside the comparison's
        std::erase_if(candidates, [](const tuner::candidate& c) { return c.role == "chosen"; });
        for (auto& c : candidates)
            if (c.role.ends_with(", chosen"))
                c.role.resize(c.role.size() - 8);
        candidates.push_back({chosen_packing, sharding, "tuned, chosen"});
    }

    const auto data = tuned && !o.data_given ? tuned->data.spec : o.data;
    s.context.inputs = tuner::source_inputs(tuner::parse_source_spec(data));
    if (tuned)
        s.context.inputs.push_back(wlb::identify_file(o.config));
    tuner::document_stream stream(tuner::open_document_source(data),
                                  stream_from_options(o.stream, context, tuned));
    int window = 1;
    for (const auto& c : candidates)
        window = std::max(window, c.packing.window);
    const auto documents = tuner::materialize_documents(
        stream, tuner::tokens_for_steps(steps, chosen_packing.step_tokens(), window));
    s.context.documents = &documents;

    const bool want_trace = !o.trace.empty() || !o.trace_dir.empty();
    reports::progress_line progress;
    std::vector<tuner::evaluation> results;
    results.reserve(candidates.size());
    std::size_t chosen_index = 0;
    for (std::size_t i = 0; i < candidates.size(); ++i) {
        const auto& c = candidates[i];
        const bool chosen = c.role.find("chosen") != std::string::npos;
        if (chosen)
            chosen_index = i;
        tuner::evaluation_config e;
        e.packing = c.packing;
        e.sharding = c.sharding;
        e.steps = steps;
        e.plan = s.plan;
        e.faults = s.faults;
        e.keep_trace = chosen && want_trace;
        const auto label =
            candidates.size() > 1
                ? fmt::format("simulating {} ({}/{})",
                              tuner::describe_candidate(c.packing, c.sharding), i + 1,
                              candidates.size())
                : fmt::format("simulating {}", tuner::describe_candidate(c.packing, c.sharding));
        e.progress = [&](std::int64_t done, std::int64_t total) {
            progress.update(label, done, total);
        };
        results.push_back(tuner::evaluate(s.costs, documents, e));
    }
    progress.clear();
    const auto& chosen = results[chosen_index];
    std::vector<reports::compared> comparison;
    if (o.compare)
        for (std::size_t i = 0; i < results.size(); ++i)
            comparison.push_back({&results[i], candidates[i].role});

    write_traces(o, chosen.trace, s.context);
    const auto json = [&] {
        return reports::simulate_json(s.costs, s.context, chosen, comparison).dump(2);
    };
    if (!o.html.empty())
        reports::write_html_report(reports::html_kind::simulate,
                                   reports::simulate_json(s.costs, s.context, chosen, comparison),
                                   o.html);
    if (o.json == "-") {
        fmt::print("{}\n", json());
        return;
    }
    if (!o.json.empty())
        wlb::write_file_atomic(o.json, json() + "\n");
    if (o.compare)
        fmt::print("{}", reports::compare_text(s.costs, s.context, comparison));
    else
        fmt::print("{}", reports::simulate_text(s.costs, s.context, chosen));
    if (o.compare && want_trace)
        fmt::print("\ntraces are of {}\n", chosen.name);
    print_trace_notes(o);
    if (!o.html.empty())
        fmt::print("HTML report: {} (one self-contained page; opens offline)\n", o.html);
}

} // namespace

registered_command register_simulate(CLI::App& app, error_sink& sink) {
    auto o = std::make_shared<simulate_options>();
    auto* sub = app.add_subcommand(
        "simulate", "Simulate 4D-parallel training steps with the cost model: step time, bubble, "
                    "imbalance, critical path, slowest ranks, predicted speedup of packing and "
                    "CP sharding policies, Perfetto trace (all simulated)");
    auto* batch = sub->add_option(
        "--batch", o->batch,
        "Sharded global batches to simulate (JSON, schema wlbtune.sharded_batch/1) instead of "
        "packing and sharding --data");
    auto* data = sub->add_option(
        "-d,--data", o->data,
        std::string("Documents to pack and shard (default: the embedded workload):\n") +
            std::string(tuner::source_spec_help()));
    const auto job_options = add_job_options(*sub, o->job);
    std::vector<CLI::Option*> data_only;
    data_only.push_back(data);
    auto tuned_away = add_stream_options(*sub, o->stream); // what --config replaces
    append_options(tuned_away, add_packing_options(*sub, o->packing, "--packing"));
    append_options(tuned_away, add_sharding_options(*sub, o->sharding, sharding_use::always));
    append_options(data_only, tuned_away);
    data_only.push_back(sub->add_flag(
        "--compare", o->compare,
        "Run plain + per-seq (baseline), plain + adaptive, wlb + per-seq, wlb + adaptive, wlb + "
        "per-doc, wlb + hybrid and fixed-greedy + adaptive (and --packing/--sharding) on the "
        "same documents and print the predicted step time and speedup (simulated)"));
    for (auto* opt : data_only)
        batch->excludes(opt);
    auto* config = sub->add_option(
        "--config", o->config,
        "Apply a tuned config (wlbtune.config/1 from wlbtune tune): its layout, model, hardware, "
        "data order, packing, sharding, schedule and partition; --steps defaults to the steps "
        "it was tuned on; --data may point it at other data");
    config->excludes(batch);
    append_options(tuned_away, job_options);
    for (auto* opt : tuned_away)
        config->excludes(opt);
    sub->add_option("--schedule", o->schedule,
                    "Pipeline schedule: 1f1b, interleaved (Megatron), llama3:N (N consecutive "
                    "micro-batches per model chunk), auto")
        ->capture_default_str();
    sub->add_option("--partition", o->partition,
                    "Layers per model chunk: even, llama3 (first and last one fewer) or a list "
                    "\"7,8,8,7\"")
        ->capture_default_str();
    for (const char* name : {"--schedule", "--partition"}) // the config's own
        config->excludes(sub->get_option(name));
    sub->add_option("-n,--steps", o->steps,
                    "Steps to simulate: with --data, to pack (default 64); with --batch, the "
                    "first N steps of the file (default: all)");
    sub->add_option("--inject", o->inject,
                    "Fault to inject (repeatable): slow-rank=R:F, slow-link=A-B:F, "
                    "heavy-mb=M[@D]:F, slow-stage=S:F");
    sub->add_option("--bucket-params", o->bucket_params,
                    "DP gradient bucket size in parameters per TP rank")
        ->capture_default_str();
    sub->add_flag("--no-overlap-grad-reduce", o->no_overlap,
                  "Reduce gradients after the backward instead of overlapping it");
    sub->add_option("--trace", o->trace,
                    "Write a Perfetto (Chrome JSON) trace; gzip-compressed if it ends in .gz. "
                    "With --compare: of the --packing/--sharding candidate");
    sub->add_option("--trace-dir", o->trace_dir,
                    "Write the trace as a wlbtune.trace/1 directory (one JSONL file per rank)");
    sub->add_option("--json", o->json,
                    "Write the summary (wlbtune.simulate/1) to FILE, or - for "
                    "stdout instead of the tables");
    sub->add_option("--html", o->html,
                    "With --compare: write an HTML report to FILE: speedup bars, step time and "
                    "imbalance per step, delay distributions (one self-contained page)")
        ->needs(sub->get_option("--compare"));
    sub->footer("Examples:\n"
                "  wlbtune simulate --compare\n"
                "  wlbtune simulate --data json:lengths.json --model 7b --layout "
                "tp=8,cp=2,pp=4,dp=1 --context 128k --packing wlb --sharding adaptive --steps "
                "64 --trace step.json.gz\n"
                "  wlbtune simulate --batch b.json --inject slow-rank=5:1.3 --json s.json\n"
                "  wlbtune simulate --config tuned.json --compare");
    return {sub, [o, &sink, sub] {
                o->data_given = sub->get_option("--data")->count() > 0;
                sink.json_stdout = o->json == "-";
                if (!o->json.empty() && o->json != "-")
                    sink.json_path = o->json;
                if (!o->batch.empty())
                    run_from_batch(*o);
                else
                    run_from_data(*o);
            }};
}

} // namespace wlb::cli
