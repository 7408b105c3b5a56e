// wlbtune shard: shard every micro-batch of a packing plan over the CP ranks and report the
// predicted CP imbalance and token balance (tuner/plan/shard_plan.hpp).
#include "cli/command.hpp"
#include "reports/shard_report.hpp"

#include <memory>

namespace wlb::cli {
namespace {

struct shard_options {
    tuner::shard_request request;
    std::string json;
    bool shapes = false;
    std::int64_t rows = 20;
};

void run_shard(const shard_options& o, const command_output& out) {
    reports::shard_text_report text(o.rows);
    nlohmann::json records = nlohmann::json::array();
    const auto result = tuner::shard_plan_file(o.request, [&](const tuner::shard_record& r) {
        text.add(r);
        if (out.wants_json())
            records.push_back(reports::shard_record_json(r, o.shapes));
    });
    out.text(text.render(result.summary, reports::shard_context_of(o.request, result)));
    out.json(reports::shard_json(o.request, result, std::move(records)));
}

} // namespace

registered_command register_shard(CLI::App& app, command_output& out) {
    auto o = std::make_shared<shard_options>();
    auto& r = o->request;
    auto* sub = app.add_subcommand(
        "shard", "Shard every micro-batch of a packing plan over the CP ranks and report the "
                 "predicted CP imbalance and token balance");
    sub->add_option("--plan", r.plan_path, "Packing plan (wlbtune.plan/1, from wlbtune pack -o)")
        ->required();
    sub->add_option("--cp", r.cp, "CP degree to shard over (default: the plan's layout)");
    sub->add_option("-p,--policy", r.policy,
                    "Sharding policy: per-seq (2xCP chunks of the packed sequence, rank i holds i "
                    "and 2CP-1-i), per-doc (the same for every document), adaptive (the faster "
                    "of the two per micro-batch), hybrid (long documents per-doc, short ones "
                    "whole), or plan (the chunks the plan records). Default: the plan's recorded "
                    "chunks (re-sharded with its policy when --cp differs), else adaptive. With "
                    "a policy on a plan that records chunks, they are compared");
    sub->add_option("--hybrid-threshold", r.hybrid_threshold,
                    "hybrid only: documents of at least this many tokens are sharded per "
                    "document (e.g. 16k); auto (the default) picks it per micro-batch");
    sub->add_option("-m,--model", r.model, "Model preset or JSON file (default: the plan's)");
    sub->add_option("--hardware", r.hardware, "Hardware preset or JSON file (default: the plan's)");
    sub->add_option("-l,--layout", r.layout,
                    "Parallel degrees, e.g. tp=8,cp=4,pp=4,dp=1 (default: the plan's; --cp "
                    "overrides its cp)");
    add_json_option(*sub, o->json, "wlbtune.shard/1, with every micro-batch");
    sub->add_flag("--shapes", o->shapes,
                  "Include each rank's chunks and kernel shapes (cu_seqlens_q, cu_seqlens_k) in "
                  "the JSON");
    sub->add_option("--rows", o->rows, "Micro-batches shown in the terminal table")
        ->check(CLI::NonNegativeNumber);
    sub->footer("Examples:\n"
                "  wlbtune pack --steps 100 -o plan.jsonl && wlbtune shard --plan plan.jsonl "
                "--cp 4 --policy adaptive\n"
                "  wlbtune shard --plan plan.jsonl --policy hybrid --hybrid-threshold 16k "
                "--json shard.json --shapes");
    return {sub, [o, &out] {
                out.set_json(o->json);
                run_shard(*o, out);
            }};
}

} // namespace wlb::cli
