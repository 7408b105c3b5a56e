// wlbtune tune: search packing and CP sharding for a dataset, model and layout under a delay
// budget (tuner/job/tune_job.hpp); print the winner against the baselines and write the tuned
// config (wlbtune.config/1). Every step time is simulated.
#include "base/atomic_file.hpp"
#include "base/error.hpp"
#include "cli/command.hpp"
#include "cli/job_options.hpp"
#include "reports/html/html_report.hpp"
#include "reports/progress.hpp"
#include "reports/tune_report.hpp"

#include <memory>

namespace wlb::cli {
namespace {

struct tune_cli_options {
    job_option_set job;
    tuner::tune_request request;
    std::string time_budget = "60s", output, json, html;
    bool fixed_micro_batches = false, progress = false;
};

void run_tune(tune_cli_options& o, const command_output& out) {
    const auto job = o.job.resolve();
    auto& options = o.request.options;
    options.time_budget_seconds = tuner::parse_seconds(o.time_budget, "--time-budget");
    options.vary_micro_batches = !o.fixed_micro_batches;
    reports::progress_line progress(true, o.progress);
    options.progress = [&](const tuner::tune_progress& p) {
        progress.show(reports::tune_progress_line(p));
    };
    const auto result = tuner::tune_job(job, o.request);
    progress.clear();
    const auto text = result.json.dump(2) + "\n";
    out.output(text);
    if (!out.json_path().empty() && out.json_path() != o.output)
        out.json(result.json);
    if (!o.html.empty())
        reports::write_html_report(reports::html_kind::tune, result.json, o.html);
    if (o.output != "-")
        out.text(reports::tune_outcome_text(job, result, options, o.output) +
                 reports::html_output_note(o.html));
}

} // namespace

registered_command register_tune(CLI::App& app, command_output& out) {
    auto o = std::make_shared<tune_cli_options>();
    auto& c = o->request.options.constraints;
    auto* sub = app.add_subcommand(
        "tune", "Search packing (policy, outlier queues, S_max, micro-batches) and CP sharding "
                "for a dataset, model and layout under a delay budget; report the predicted "
                "(simulated) speedup and write the tuned config");
    o->job.add(*sub, job_group::data | job_group::model | job_group::stream | job_group::schedule);
    sub->add_option("--max-documents", o->request.max_documents,
                    "Tune on the first N documents of the stream only (0: as many as needed)")
        ->check(non_negative());
    sub->add_option("--max-mean-delay", c.max_mean_delay,
                    "Constraint: mean delay per token in iterations (WLB-LLM: 0.5)")
        ->check(non_negative());
    sub->add_option("--max-delay-steps", c.max_delay_steps,
                    "Constraint: largest delay of any document in steps (0: no limit)")
        ->check(non_negative());
    sub->add_option("--max-delay", o->request.options.max_delay,
                    "Bound the longest wait: wlb candidates' queues release a document that "
                    "waited K steps (spread over the micro-batches), and no candidate may "
                    "delay one longer (0: no bound)")
        ->check(non_negative());
    sub->add_option("--memory-gb", c.memory_gbytes,
                    "Constraint: memory per rank in GB (0: the hardware's; 10% is reserved)")
        ->check(non_negative());
    sub->add_option("--min-step-tokens", c.min_step_tokens_fraction,
                    "Constraint: mean tokens per step as a fraction of dp x pp x context")
        ->check(positive());
    sub->add_option("--time-budget", o->time_budget,
                    "Stop searching after this long (60s, 2m, 90); baselines always complete");
    auto& so = o->request.options;
    sub->add_option("--seed", so.seed, "Seed of the search's random points (deterministic)")
        ->check(non_negative());
    sub->add_option("--threads", so.threads, "Evaluation threads (0: one per core)")
        ->check(non_negative());
    sub->add_option("--steps", so.sample_steps,
                    "Steps per evaluation (0: 256 or what the data holds, doubled while the "
                    "ranking is unstable)")
        ->check(non_negative());
    sub->add_option("--max-steps", so.max_sample_steps, "Most steps per evaluation")
        ->check(positive());
    sub->add_flag("--fixed-micro-batches", o->fixed_micro_batches,
                  "Keep pp micro-batches per replica (do not search 2 pp and 4 pp at the same "
                  "step budget)");
    sub->add_option("-o,--output", o->output,
                    "Write the tuned config (wlbtune.config/1 JSON) to this file ('-' for stdout)");
    add_json_option(*sub, o->json, "the same wlbtune.config/1 document");
    add_html_option(*sub, o->html,
                    "step time against delay for every candidate evaluated, what each knob "
                    "bought");
    sub->add_flag("--progress", o->progress,
                  "Print progress lines on stderr even when it is not a terminal");
    sub->footer("Examples:\n  wlbtune tune -o tuned.json          # the paper's 7B-128K, embedded "
                "workload\n  wlbtune tune --data json:lengths.json --model 30b --layout "
                "tp=8,cp=4,pp=4,dp=1 --time-budget 30s -o tuned.json\n"
                "  wlbtune pack --config tuned.json -o plan.jsonl.gz");
    return {sub, [o, &out] {
                out.set_json(o->json);
                out.set_output(o->output);
                run_tune(*o, out);
            }};
}

} // namespace wlb::cli
