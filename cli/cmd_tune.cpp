// wlbtune tune: search packing and CP sharding for a dataset, model and layout under a delay
// budget; print the winner against the baselines and write the tuned config
// (wlbtune.config/1). Every step time is simulated.
#include "base/atomic_file.hpp"
#include "base/error.hpp"
#include "cli/command.hpp"
#include "cli/common_options.hpp"
#include "reports/html/html_report.hpp"
#include "reports/tune_report.hpp"
#include "runtime/parallel/layout.hpp"
#include "runtime/parallel/pipeline_schedule.hpp"
#include "tuner/cost/cost_model.hpp"
#include "tuner/data/document_stream.hpp"
#include "tuner/data/open_document_source.hpp"
#include "tuner/search/evaluate.hpp"
#include "tuner/search/tune.hpp"
#include "tuner/search/tuned_config.hpp"

#include <chrono>
#include <cstdio>
#include <fmt/format.h>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <unistd.h>

namespace wlb::cli {
namespace {

struct tune_cli_options {
    std::string data = "default";
    job_option_values job;
    stream_option_values stream;
    std::int64_t max_documents = 0;
    double max_mean_delay = 0.5;
    std::int64_t max_delay_steps = 0;
    double memory_gb = 0.0;
    double min_step_tokens = 0.99;
    std::string time_budget = "60s";
    std::uint64_t seed = 1;
    int threads = 0;
    std::int64_t steps = 0;
    std::int64_t max_steps = 1024;
    bool fixed_micro_batches = false;
    std::string schedule = "auto";
    std::string partition = "even";
    std::string output;
    std::string json;
    std::string html;
    bool progress = false;
};

void run_tune(const tune_cli_options& o) {
    const auto context = context_from_options(o.stream);
    const auto costs = cost_model_from_options(o.job);
    const auto& layout = costs.layout();
    if (o.max_mean_delay < 0.0)
        throw input_error(fmt::format("--max-mean-delay must be >= 0, found {}", o.max_mean_delay));
    if (o.min_step_tokens <= 0.0 || o.min_step_tokens > 1.0)
        throw input_error(
            fmt::format("--min-step-tokens must be in (0, 1], found {}", o.min_step_tokens));

    tuner::tune_options options;
    options.constraints.max_mean_delay = o.max_mean_delay;
    options.constraints.max_delay_steps = o.max_delay_steps;
    options.constraints.memory_gbytes = o.memory_gb;
    options.constraints.min_step_tokens_fraction = o.min_step_tokens;
    options.time_budget_seconds = tuner::parse_seconds(o.time_budget, "--time-budget");
    options.seed = o.seed;
    options.threads = o.threads;
    options.sample_steps = o.steps;
    options.max_sample_steps = o.max_steps;
    options.vary_micro_batches = !o.fixed_micro_batches;
    options.plan.schedule = runtime::parse_schedule(o.schedule, layout.vpp());
    options.plan.partition = runtime::make_stage_partition(o.partition, costs.model().layers,
                                                           layout.pp() * layout.vpp());

    auto so = stream_from_options(o.stream, context);
    so.max_documents = o.max_documents;
    const auto spec = tuner::parse_source_spec(o.data);
    tuner::document_stream stream(tuner::open_document_source(o.data), so);
    const std::int64_t step_tokens = static_cast<std::int64_t>(layout.dp()) * layout.pp() * context;
    const auto documents = tuner::materialize_documents(
        stream, tuner::tokens_for_steps(options.max_sample_steps, step_tokens, 8));

    // Progress on a terminal (one rewritten line), or every 2 s with --progress elsewhere.
    const bool tty = isatty(fileno(stderr)) != 0;
    auto last = std::chrono::steady_clock::now() - std::chrono::seconds(10);
    bool printed = false;
    if (tty || o.progress)
        options.progress = [&](const tuner::tune_progress& p) {
            const auto now = std::chrono::steady_clock::now();
            if (!tty && now - last < std::chrono::seconds(2))
                return;
            last = now;
            const auto line = reports::tune_progress_line(p);
            if (tty)
                fmt::print(stderr, "\r{:.{}}\x1b[K", line, 160);
            else
                fmt::print(stderr, "{}\n", line);
            printed = true;
        };
    const auto result = tuner::tune(costs, context, documents, options);
    if (printed && tty)
        fmt::print(stderr, "\r\x1b[K");

    tuner::tuned_config config;
    config.layout_spec = layout.spec();
    config.layout_order = layout.order_string();
    config.context_tokens = context;
    config.model = costs.model();
    config.hardware = costs.hardware();
    config.data.spec = o.data;
    config.data.description = documents.description;
    config.data.context_policy = std::string(tuner::to_string(so.policy));
    config.data.shuffle_seed = o.stream.shuffle_seed;
    config.data.documents = static_cast<std::int64_t>(documents.documents.size());
    config.data.tokens = documents.tokens;
    config.data.inputs = tuner::source_inputs(spec);
    config.schedule = o.schedule;
    config.partition = o.partition;
    config.evaluated_steps = result.sample_steps;
    const auto json = tuner::tuned_config_json(config, result, options);
    const auto text = json.dump(2) + "\n";
    if (!o.output.empty())
        wlb::write_file_atomic(o.output, text);
    if (!o.json.empty() && o.json != o.output)
        wlb::write_file_atomic(o.json, text);
    if (!o.html.empty())
        reports::write_html_report(reports::html_kind::tune, json, o.html);
    if (o.json == "-" || o.output == "-")
        return;

    reports::tune_context ctx;
    ctx.data = documents.description;
    ctx.documents = config.data.documents;
    ctx.tokens = documents.tokens;
    ctx.layout = layout.spec();
    ctx.model = costs.model().name;
    ctx.hardware = costs.hardware().name;
    ctx.context_tokens = context;
    ctx.max_mean_delay = o.max_mean_delay;
    ctx.max_delay_steps = o.max_delay_steps;
    fmt::print("{}", reports::tune_text(ctx, result));
    if (!o.output.empty())
        fmt::print("\ntuned config: {} (wlbtune.config/1). Apply it: wlbtune pack --config {} "
                   "-o plan.jsonl.gz; the first {} steps are the ones simulated here.\n",
                   o.output, o.output, result.sample_steps);
    if (!o.html.empty())
        fmt::print("HTML report: {} (one self-contained page; opens offline)\n", o.html);
}

} // namespace

registered_command register_tune(CLI::App& app, error_sink& sink) {
    auto o = std::make_shared<tune_cli_options>();
    auto* sub = app.add_subcommand(
        "tune", "Search packing (policy, outlier queues, S_max, micro-batches) and CP sharding "
                "for a dataset, model and layout under a delay budget; report the predicted "
                "(simulated) speedup and write the tuned config");
    add_data_option(*sub, o->data);
    add_job_options(*sub, o->job);
    add_stream_options(*sub, o->stream);
    sub->add_option("--max-documents", o->max_documents,
                    "Tune on the first N documents of the stream only (0: as many as the sample "
                    "needs)")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    sub->add_option("--max-mean-delay", o->max_mean_delay,
                    "Constraint: mean delay per token in iterations (WLB-LLM: 0.5)")
        ->capture_default_str();
    sub->add_option("--max-delay-steps", o->max_delay_steps,
                    "Constraint: largest delay of any document in steps (0: no limit)")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    sub->add_option("--memory-gb", o->memory_gb,
                    "Constraint: memory per rank in GB (0: the hardware's; 10% is reserved)")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    sub->add_option("--min-step-tokens", o->min_step_tokens,
                    "Constraint: mean tokens per step as a fraction of the budget dp x pp x "
                    "context")
        ->capture_default_str();
    sub->add_option("--time-budget", o->time_budget,
                    "Stop searching after this long (60s, 2m, 90); baselines always complete")
        ->capture_default_str();
    sub->add_option("--seed", o->seed, "Seed of the search's random points (deterministic)")
        ->capture_default_str();
    sub->add_option("--threads", o->threads, "Evaluation threads (0: one per core)")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    sub->add_option("--steps", o->steps,
                    "Steps per evaluation (0: 256 or what the data holds, doubled while the "
                    "ranking is unstable)")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    sub->add_option("--max-steps", o->max_steps, "Most steps per evaluation")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    sub->add_flag("--fixed-micro-batches", o->fixed_micro_batches,
                  "Keep pp micro-batches per replica (do not search 2 pp and 4 pp at the same "
                  "step budget)");
    sub->add_option("--schedule", o->schedule,
                    "Pipeline schedule: 1f1b, interleaved, llama3:N, auto")
        ->capture_default_str();
    sub->add_option("--partition", o->partition, "Layers per model chunk: even, llama3, or a list")
        ->capture_default_str();
    sub->add_option("-o,--output", o->output,
                    "Write the tuned config (wlbtune.config/1 JSON) to this file ('-' for stdout)");
    sub->add_option("--json", o->json,
                    "Write the same wlbtune.config/1 document to FILE, or - to print it instead "
                    "of the tables");
    sub->add_option("--html", o->html,
                    "Write an HTML report to FILE: step time against delay for every candidate, "
                    "what each knob bought (one self-contained page)");
    sub->add_flag("--progress", o->progress,
                  "Print progress lines on stderr even when it is not a terminal");
    sub->footer("Examples:\n"
                "  wlbtune tune -o tuned.json                   # the paper's 7B-128K on the "
                "embedded workload\n"
                "  wlbtune tune --data json:lengths.json --model 30b --layout "
                "tp=8,cp=4,pp=4,dp=1 --time-budget 30s -o tuned.json\n"
                "  wlbtune pack --config tuned.json -o plan.jsonl.gz");
    return {sub, [o, &sink] {
                sink.json_stdout = o->json == "-";
                sink.json_path = o->json == "-" ? "" : o->json;
                if (o->json == "-" && o->output == "-")
                    throw usage_error("--json - and -o - cannot both write to standard output");
                run_tune(*o);
            }};
}

} // namespace wlb::cli
