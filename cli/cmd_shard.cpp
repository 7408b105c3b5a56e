#include "cli/command.hpp"
#include "reports/shard_report.hpp"
#include "runtime/atomic_file.hpp"
#include "runtime/error.hpp"
#include "runtime/provenance.hpp"
#include "tuner/plan_io.hpp"
#include "tuner/shard_plan.hpp"

#include <fmt/format.h>
#include <memory>
#include <nlohmann/json.hpp>

namespace wlb::cli {
namespace {

struct shard_options {
    std::string plan_path;
    int cp = 0;
    std::string policy; ///< empty: the plan's sharding, else adaptive
    std::string hybrid_threshold = "auto";
    std::string model;
    std::string hardware;
    std::string layout;
    std::string json_path;
    bool shapes = false;
    std::int64_t rows = 20;
};

void run_shard(const shard_options& o) {
    tuner::plan_reader reader(o.plan_path);
    const auto cost =
        tuner::cost_model_for_plan(reader.header(), {o.model, o.hardware, o.layout, o.cp});
    tuner::sharding_spec spec;
    if (!o.policy.empty()) {
        spec.policy = tuner::parse_sharding_policy(o.policy, "--policy");
        spec.hybrid_threshold_tokens =
            tuner::parse_hybrid_threshold(o.hybrid_threshold, "--hybrid-threshold");
    } else if (auto from_plan = tuner::plan_sharding_spec(reader.header(), o.plan_path)) {
        spec = *from_plan;
    }
    const auto sharder = tuner::make_sharder(spec, cost);

    reports::shard_text_report text(o.rows);
    nlohmann::json records = nlohmann::json::array();
    const bool json = !o.json_path.empty();
    const auto summary =
        tuner::shard_plan(reader, *sharder, cost, [&](const tuner::shard_record& r) {
            text.add(r);
            if (json)
                records.push_back(reports::shard_record_json(r, o.shapes));
        });

    if (o.json_path != "-")
        fmt::print("{}", text.render(summary, spec, cost.layout().cp()));
    if (json) {
        auto j =
            runtime::report_header(reports::shard_schema, {runtime::identify_file(o.plan_path)});
        j["predicted"] = "every seconds figure is predicted by the cost model, not measured";
        j["sharding"] = tuner::to_json(spec);
        j["cp"] = cost.layout().cp();
        j["cost_model"] = cost.to_json();
        j["summary"] = reports::shard_summary_json(summary);
        j["micro_batches"] = std::move(records);
        runtime::write_file_atomic(o.json_path, j.dump(2) + "\n");
    }
}

} // namespace

registered_command register_shard(CLI::App& app, error_sink& sink) {
    auto o = std::make_shared<shard_options>();
    auto* sub = app.add_subcommand(
        "shard", "Shard every micro-batch of a packing plan over the CP ranks and report the "
                 "predicted CP imbalance and token balance");
    sub->add_option("--plan", o->plan_path, "Packing plan (wlbtune.plan/1, from wlbtune pack -o)")
        ->required();
    sub->add_option("--cp", o->cp, "CP degree (0: the plan's layout)")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    sub->add_option("-p,--policy", o->policy,
                    "Sharding policy: per-seq (2xCP chunks of the packed sequence, rank i holds i "
                    "and 2CP-1-i), per-doc (the same for every document), adaptive (the faster "
                    "of the two per micro-batch), hybrid (long documents per-doc, short ones "
                    "whole). Default: the plan's --sharding, else adaptive");
    sub->add_option("--hybrid-threshold", o->hybrid_threshold,
                    "hybrid: documents of at least this many tokens are sharded per document; "
                    "auto picks it per micro-batch")
        ->capture_default_str();
    sub->add_option("-m,--model", o->model, "Model preset or JSON file (default: the plan's)");
    sub->add_option("--hardware", o->hardware,
                    "Hardware preset or JSON file (default: the plan's)");
    sub->add_option("-l,--layout", o->layout,
                    "Parallel degrees, e.g. tp=8,cp=4,pp=4,dp=1 (default: the plan's; --cp "
                    "overrides its cp)");
    sub->add_option("--json", o->json_path,
                    "Write versioned JSON (wlbtune.shard/1) with every micro-batch to this file "
                    "('-' for stdout)");
    sub->add_flag("--shapes", o->shapes,
                  "Include each rank's chunks and kernel shapes (cu_seqlens_q, cu_seqlens_k) in "
                  "the JSON");
    sub->add_option("--rows", o->rows, "Micro-batches shown in the terminal table")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    sub->footer("Examples:\n"
                "  wlbtune pack --steps 100 -o plan.jsonl && wlbtune shard --plan plan.jsonl "
                "--cp 4 --policy adaptive\n"
                "  wlbtune shard --plan plan.jsonl --policy hybrid --hybrid-threshold 16k "
                "--json shard.json --shapes");
    return {sub, [o, &sink] {
                sink.json_path = o->json_path == "-" ? "" : o->json_path;
                sink.json_stdout = o->json_path == "-";
                run_shard(*o);
            }};
}

} // namespace wlb::cli
