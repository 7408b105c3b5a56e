#include "base/atomic_file.hpp"
#include "base/error.hpp"
#include "base/provenance.hpp"
#include "cli/command.hpp"
#include "reports/shard_report.hpp"
#include "tuner/plan/plan_io.hpp"
#include "tuner/plan/shard_plan.hpp"
#include "tuner/sharding/make_sharder.hpp"

#include <fmt/format.h>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

namespace wlb::cli {
namespace {

struct shard_options {
    std::string plan_path;
    std::optional<int> cp;
    std::string policy;           ///< empty: the plan's recorded chunks or policy, else adaptive
    std::string hybrid_threshold; ///< empty: not given
    std::string model;
    std::string hardware;
    std::string layout;
    std::string json_path;
    bool shapes = false;
    std::int64_t rows = 20;
};

void run_shard(const shard_options& o) {
    if (o.cp && *o.cp < 1)
        throw input_error(fmt::format("--cp {}: expected a CP degree >= 1", *o.cp));
    tuner::plan_reader reader(o.plan_path);
    const auto cost = tuner::cost_model_for_plan(reader.header(),
                                                 {o.model, o.hardware, o.layout, o.cp.value_or(0)});
    const auto choice = tuner::choose_plan_sharding(
        reader.header(), reader.cp(), cost.layout().cp(), o.policy, o.hybrid_threshold);
    const auto sharder = choice.spec ? tuner::make_sharder(*choice.spec, cost) : nullptr;

    reports::shard_text_report text(o.rows);
    nlohmann::json records = nlohmann::json::array();
    const bool json = !o.json_path.empty();
    const auto summary =
        tuner::shard_plan(reader, sharder.get(), cost, [&](const tuner::shard_record& r) {
            text.add(r);
            if (json)
                records.push_back(reports::shard_record_json(r, o.shapes));
        });

    const reports::shard_report_context ctx{o.plan_path,          choice.source,
                                            choice.reported,      cost.model().name,
                                            cost.hardware().name, cost.layout().spec()};
    if (o.json_path != "-")
        fmt::print("{}", text.render(summary, ctx));
    if (json) {
        auto j = wlb::report_header(reports::shard_schema, {wlb::identify_file(o.plan_path)});
        j["predicted"] = "every seconds figure is predicted by the cost model, not measured";
        j["plan"] = o.plan_path;
        j["source"] = choice.spec ? "policy" : "plan";
        j["source_text"] = choice.source;
        j["sharding"] = tuner::to_json(choice.reported);
        j["cp"] = cost.layout().cp();
        j["layout"] = cost.layout().spec();
        j["cost_model"] = cost.to_json();
        j["summary"] = reports::shard_summary_json(summary.run);
        if (summary.recorded)
            j["recorded_comparison"] = {
                {"summary", reports::shard_summary_json(*summary.recorded)},
                {"differing_micro_batches", summary.differing_micro_batches}};
        j["micro_batches"] = std::move(records);
        wlb::write_file_atomic(o.json_path, j.dump(2) + "\n");
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
    sub->add_option("--cp", o->cp, "CP degree to shard over (default: the plan's layout)");
    sub->add_option("-p,--policy", o->policy,
                    "Sharding policy: per-seq (2xCP chunks of the packed sequence, rank i holds i "
                    "and 2CP-1-i), per-doc (the same for every document), adaptive (the faster "
                    "of the two per micro-batch), hybrid (long documents per-doc, short ones "
                    "whole), or plan (the chunks the plan records). Default: the plan's recorded "
                    "chunks (re-sharded with its policy when --cp differs), else adaptive. With "
                    "a policy on a plan that records chunks, they are compared");
    sub->add_option("--hybrid-threshold", o->hybrid_threshold,
                    "hybrid only: documents of at least this many tokens are sharded per "
                    "document (e.g. 16k); auto (the default) picks it per micro-batch");
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
                "  wlbtune pack --steps 100 --sharding adaptive -o plan.jsonl && wlbtune shard "
                "--plan plan.jsonl --policy hybrid\n"
                "  wlbtune shard --plan plan.jsonl --policy hybrid --hybrid-threshold 16k "
                "--json shard.json --shapes");
    return {sub, [o, &sink] {
                sink.json_path = o->json_path == "-" ? "" : o->json_path;
                sink.json_stdout = o->json_path == "-";
                run_shard(*o);
            }};
}

} // namespace wlb::cli
