// wlbtune tune: search packing and CP sharding for a dataset, model and layout under a delay
// budget (tuner/job/tune_job.hpp); print the winner against the baselines and write the tuned
// config (wlbtune.config/1). Every step time is simulated.
#include "cli/command.hpp"
#include "cli/job_options.hpp"
#include "cli/search_options.hpp"
#include "reports/html/html_report.hpp"
#include "reports/progress.hpp"
#include "reports/tune_report.hpp"

#include <memory>

namespace wlb::cli {
namespace {

struct tune_cli_options {
    job_option_set job;
    tuner::tune_request request;
    search_option_set search;
    std::string output, json, html;
    bool progress = false;
};

void run_tune(tune_cli_options& o, const command_output& out) {
    const auto job = o.job.resolve();
    auto& options = o.request.options;
    o.search.apply(o.request);
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
    auto* sub = app.add_subcommand(
        "tune", "Search packing (policy, outlier queues, S_max, micro-batches) and CP sharding "
                "for a dataset, model and layout under a delay budget; report the predicted "
                "(simulated) speedup and write the tuned config");
    o->job.add(*sub, job_group::data | job_group::model | job_group::stream | job_group::schedule);
    o->search.add(*sub, o->request);
    sub->add_option("-o,--output", o->output,
                    "Write the tuned config (wlbtune.config/1 JSON) to this file ('-' for stdout)");
    add_json_option(*sub, o->json, "the same wlbtune.config/1 document");
    add_html_option(*sub, o->html,
                    "step time against delay for every candidate evaluated, what each knob "
                    "bought");
    add_progress_flag(*sub, o->progress);
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
