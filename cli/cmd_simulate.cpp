// wlbtune simulate: simulate training steps with the cost model (tuner/job/simulate_data_job.hpp):
// the steps of a sharded batch file, or the job's documents packed and sharded, alone or beside
// WLB-LLM's comparison candidates (--compare). Every figure is simulated.
#include "base/atomic_file.hpp"
#include "cli/command.hpp"
#include "cli/job_options.hpp"
#include "reports/html/html_report.hpp"
#include "reports/progress.hpp"
#include "reports/simulate_report.hpp"

#include <memory>

namespace wlb::cli {
namespace {

struct simulate_options {
    job_option_set job;
    tuner::simulate_request request;
    std::string batch, trace, trace_dir, json, html;
    bool no_overlap = false;
};

void run_simulate(simulate_options& o, const command_output& out) {
    const auto job = o.job.resolve();
    auto& r = o.request;
    r.knobs = o.job.values.packing;
    r.knobs.context_tokens = job.context_tokens;
    r.overlap_grad_reduce = !o.no_overlap;
    r.keep_trace = !o.trace.empty() || !o.trace_dir.empty();
    if (!o.batch.empty()) {
        const auto result = tuner::simulate_batch_job(job, o.batch, r);
        reports::write_simulated_traces(result.result.trace, o.trace, o.trace_dir, result.inputs,
                                        &job.model);
        out.json(reports::simulate_batch_json(job, result));
        out.text(reports::simulate_batch_text(job, result, o.trace, o.trace_dir));
        return;
    }
    reports::progress_line progress;
    r.progress = [&](const std::string& label, std::int64_t done, std::int64_t total) {
        progress.update(label, done, total);
    };
    const auto result = tuner::simulate_data_job(job, r);
    progress.clear();
    reports::write_simulated_traces(result.results[result.chosen].trace, o.trace, o.trace_dir,
                                    result.inputs, &job.model);
    out.json(reports::simulate_data_json(job, result, r.compare));
    if (!o.html.empty())
        reports::write_html_report(reports::html_kind::simulate,
                                   reports::simulate_data_json(job, result, r.compare), o.html);
    out.text(reports::simulate_data_text(job, result, r.compare, o.trace, o.trace_dir) +
             reports::html_output_note(o.html));
}

} // namespace

registered_command register_simulate(CLI::App& app, command_output& out) {
    auto o = std::make_shared<simulate_options>();
    auto* sub = app.add_subcommand(
        "simulate", "Simulate 4D-parallel training steps with the cost model: step time, bubble, "
                    "imbalance, critical path, slowest ranks, predicted speedup of packing and "
                    "CP sharding policies, Perfetto trace (all simulated)");
    auto* batch =
        sub->add_option("--batch", o->batch,
                        "Sharded global batches to simulate (JSON, schema "
                        "wlbtune.sharded_batch/1) instead of packing and sharding --data");
    o->job.add(*sub, job_group::data | job_group::model | job_group::stream | job_group::packing |
                         job_group::sharding | job_group::schedule | job_group::config);
    for (auto* opt : o->job.options_of(job_group::data | job_group::stream | job_group::packing |
                                       job_group::sharding | job_group::config))
        batch->excludes(opt); // a batch is already packed and sharded
    batch->excludes(
        sub->add_flag("--compare", o->request.compare,
                      "Run plain + per-seq (baseline), plain + adaptive, wlb + per-seq, "
                      "wlb + adaptive, wlb + per-doc, wlb + hybrid and fixed-greedy + "
                      "adaptive (and --packing/--sharding) on the same documents and "
                      "print the predicted step time and speedup (simulated)"));
    sub->add_option("-n,--steps", o->request.steps,
                    "Steps: with --data, to pack (default 64, or the steps a tuned config was "
                    "tuned on); with --batch, the first N of the file (default: all)");
    sub->add_option("--inject", o->request.faults,
                    "Fault to inject (repeatable): slow-rank=R:F, slow-link=A-B:F, "
                    "heavy-mb=M[@D]:F, slow-stage=S:F");
    sub->add_option("--bucket-params", o->request.bucket_params,
                    "DP gradient bucket size in parameters per TP rank")
        ->check(positive());
    sub->add_flag("--no-overlap-grad-reduce", o->no_overlap,
                  "Reduce gradients after the backward instead of overlapping it");
    add_trace_options(*sub, o->trace, o->trace_dir);
    add_json_option(*sub, o->json, "wlbtune.simulate/1");
    add_html_option(*sub, o->html,
                    "with --compare, speedup bars, step time and imbalance per step, delay "
                    "distributions")
        ->needs(sub->get_option("--compare"));
    sub->footer("Examples:\n  wlbtune simulate --compare\n"
                "  wlbtune simulate --data json:lengths.json --model 7b --layout "
                "tp=8,cp=2,pp=4,dp=1 --packing wlb --steps 64 --trace t.json.gz\n"
                "  wlbtune simulate --batch b.json --inject slow-rank=5:1.3 --json s.json\n"
                "  wlbtune simulate --config tuned.json --compare");
    return {sub, [o, &out] {
                out.set_json(o->json);
                if (!o->trace.empty())
                    wlb::check_output_path(o->trace, "--trace");
                run_simulate(*o, out);
            }};
}

} // namespace wlb::cli
