// wlbtune simulate: simulate training steps with the cost model (tuner/job/simulate_data_job.hpp):
// the steps of a sharded batch file, or the job's documents packed and sharded, alone or beside
// WLB-LLM's comparison candidates (--compare). Every figure is simulated.
#include "base/atomic_file.hpp"
#include "cli/command.hpp"
#include "cli/job_options.hpp"
#include "cli/simulation_options.hpp"
#include "reports/progress.hpp"
#include "reports/simulate_report.hpp"

#include <memory>

namespace wlb::cli {
namespace {

struct simulate_options {
    job_option_set job;
    tuner::simulate_request request;
    reports::simulate_files files; // --trace, --trace-dir, --html
    std::string batch, json;
};

void run_simulate(simulate_options& o, const command_output& out) {
    const auto job = o.job.resolve();
    auto& r = o.request;
    r.knobs = o.job.values.packing;
    r.knobs.context_tokens = job.context_tokens;
    r.keep_trace = !o.files.perfetto.empty() || !o.files.trace_dir.empty();
    if (!o.batch.empty()) {
        reports::report_simulate_batch(out, job, tuner::simulate_batch_job(job, o.batch, r),
                                       o.files);
        return;
    }
    reports::progress_line progress;
    r.progress = [&](const std::string& label, std::int64_t done, std::int64_t total) {
        progress.update(label, done, total);
    };
    const auto result = tuner::simulate_data_job(job, r);
    progress.clear();
    reports::report_simulate_data(out, job, result, r.compare, o.files);
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
    add_simulation_options(*sub, o->request);
    add_trace_options(*sub, o->files.perfetto, o->files.trace_dir);
    add_json_option(*sub, o->json, "wlbtune.simulate/1");
    add_html_option(*sub, o->files.html,
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
                if (!o->files.perfetto.empty())
                    wlb::check_output_path(o->files.perfetto, "--trace");
                run_simulate(*o, out);
            }};
}

} // namespace wlb::cli
