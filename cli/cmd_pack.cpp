// wlbtune pack: pack a document stream into steps with a packing policy, write the plan, and
// report predicted imbalance, delay and packing time (tuner/job/pack_job.hpp).
#include "cli/command.hpp"
#include "cli/job_options.hpp"
#include "reports/html/html_report.hpp"
#include "reports/pack_report.hpp"
#include "tuner/job/pack_job.hpp"

#include <memory>

namespace wlb::cli {
namespace {

struct pack_options {
    job_option_set job;
    tuner::pack_request request;
    std::vector<std::string> compare;
    std::string json, html;
    bool json_steps = false;
};

void run_pack(pack_options& o, const command_output& out) {
    const auto job = o.job.resolve();
    for (const auto& name : o.compare) // checked before anything is written
        o.request.compare.push_back(tuner::parse_packing_policy(name));
    const auto result = tuner::pack_job(job, o.request);
    if (!o.html.empty()) // the report with its per-step measures, which the page charts
        reports::write_html_report(reports::html_kind::pack,
                                   reports::pack_outcome_json(job, result, true), o.html);
    out.text(reports::pack_outcome_text(job, result) + reports::html_output_note(o.html));
    out.json(reports::pack_outcome_json(job, result, o.json_steps));
}

} // namespace

registered_command register_pack(CLI::App& app, command_output& out) {
    auto o = std::make_shared<pack_options>();
    auto* sub = app.add_subcommand(
        "pack", "Pack a document stream into training steps under a packing policy, write the "
                "plan and report predicted imbalance, delay and packing time");
    o->job.values.packing.policy = "wlb";
    o->job.values.sharding = ""; // sharding is an extra here
    o->job.add(*sub,
               job_group::data | job_group::model | job_group::stream | job_group::packing |
                   job_group::sharding_optional | job_group::config,
               "-p,--policy");
    sub->add_option("-n,--steps", o->request.steps, "Steps to pack (0: until the data ends)")
        ->check(non_negative());
    sub->add_option("-o,--output", o->request.plan_path,
                    "Write the plan (wlbtune.plan/1 JSON Lines, gzip if it ends in .gz) of "
                    "--policy to this file ('-' for stdout)");
    add_json_option(*sub, o->json, "wlbtune.pack/1");
    sub->add_flag("--json-steps", o->json_steps, "Include per-step measures in the JSON summary");
    add_html_option(*sub, o->html,
                    "imbalance and delay distributions per policy, imbalance over the run, the "
                    "pace of each step's heaviest micro-batch (with --compare: side by side)");
    sub->add_option("--compare", o->compare,
                    "Also run these policies on the same documents and print them side by side, "
                    "e.g. plain,fixed-greedy,varlen,wlb")
        ->delimiter(',');
    sub->footer("Examples:\n"
                "  wlbtune pack --steps 200 --compare plain,fixed-greedy,varlen,wlb\n"
                "  wlbtune pack --layout tp=8,cp=4,pp=4,dp=1 --sharding adaptive -o plan.jsonl\n"
                "  wlbtune pack --data json:lengths.json --policy wlb --thresholds 24k,64k "
                "-o plan.jsonl.gz --json summary.json");
    return {sub, [o, &out] {
                out.set_json(o->json);
                out.set_output(o->request.plan_path);
                run_pack(*o, out);
            }};
}

} // namespace wlb::cli
