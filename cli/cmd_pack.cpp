#include "base/atomic_file.hpp"
#include "base/error.hpp"
#include "cli/command.hpp"
#include "cli/common_options.hpp"
#include "reports/html/html_report.hpp"
#include "reports/pack_report.hpp"
#include "reports/shard_report.hpp"
#include "runtime/parallel/layout.hpp"
#include "tuner/cost/cost_model.hpp"
#include "tuner/data/document_stream.hpp"
#include "tuner/data/open_document_source.hpp"
#include "tuner/packing/pack_run.hpp"
#include "tuner/plan/plan_io.hpp"
#include "tuner/search/tuned_config.hpp"
#include "tuner/sharding/make_sharder.hpp"
#include "tuner/sharding/shard_run.hpp"
#include "tuner/sharding/sharding.hpp"

#include <fmt/format.h>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

namespace wlb::cli {
namespace {

struct pack_options {
    std::string data = "default";
    job_option_values job;
    stream_option_values stream;
    packing_option_values packing;
    std::int64_t steps = 0;
    std::string plan_path;
    std::string json_path;
    bool json_steps = false;
    std::string html_path;
    std::vector<std::string> compare;
    std::string config; ///< a tuned config (wlbtune.config/1) replacing the packing options
    bool data_given = false;
    /// Without --sharding the plan records no CP sharding.
    sharding_option_values sharding{.policy = "", .hybrid_threshold = ""};
};

void run_pack(const pack_options& o) {
    // --config: layout, context, model, hardware, data order, packing and sharding as tuned.
    const auto tuned = read_tuned_config_option(o.config);
    const auto context = context_from_options(o.stream, tuned);
    const auto costs = cost_model_from_options(o.job, tuned);
    const auto& layout = costs.layout();

    const auto base = packing_from_options(o.packing, context, layout, tuned);
    const auto data = tuned && !o.data_given ? tuned->data.spec : o.data;
    std::vector<tuner::packing_policy> compare; // checked before anything is written
    for (const auto& name : o.compare)
        compare.push_back(tuner::parse_packing_policy(name));
    const auto sharding = sharding_from_options(o.sharding, tuned);
    const auto sharder = sharding ? tuner::make_sharder(*sharding, costs) : nullptr;
    tuner::shard_run_accumulator sharded;

    const auto so = stream_from_options(o.stream, context, tuned);
    const auto spec = tuner::parse_source_spec(data);
    auto inputs = tuner::source_inputs(spec);
    if (tuned)
        inputs.push_back(wlb::identify_file(o.config));
    tuner::document_stream stream(tuner::open_document_source(data), so);

    std::vector<tuner::pack_result> results;
    std::int64_t documents_read = 0;
    { // the chosen policy, written to the plan
        std::unique_ptr<tuner::plan_writer> writer;
        if (!o.plan_path.empty()) {
            tuner::plan_header h;
            h.inputs = inputs;
            h.layout_spec = layout.spec();
            h.layout_order = layout.order_string();
            h.context_tokens = context;
            h.model = costs.model();
            h.hardware = costs.hardware();
            h.data = stream.describe();
            h.packing = base;
            h.sharding = sharding;
            writer = std::make_unique<tuner::plan_writer>(o.plan_path, h);
        }
        std::vector<runtime::document> waiting;
        tuner::step_sink sink;
        if (writer || sharder)
            sink = [&](const runtime::global_batch& b) {
                tuner::step_sharding decisions;
                if (sharder)
                    decisions = tuner::shard_step(b, *sharder, costs, sharded);
                if (writer)
                    writer->write(b, sharder ? &decisions : nullptr);
            };
        results.push_back(tuner::pack_stream(stream, base, costs, o.steps, sink, &waiting));
        documents_read = stream.stats().documents;
        if (writer)
            writer->finish(waiting);
    }
    for (const auto policy : compare) {
        auto c = base;
        c.policy = policy;
        if (c.policy == base.policy)
            continue;
        results.push_back(tuner::pack_stream(stream, c, costs, o.steps));
        documents_read = std::max(documents_read, stream.stats().documents);
    }

    reports::pack_context ctx{stream.describe(),     layout.spec(), costs.model().name,
                              costs.hardware().name, context,       documents_read};
    if (o.json_path != "-") {
        fmt::print("{}", reports::pack_text(ctx, results));
        if (sharding)
            fmt::print("\nCP sharding of {} over cp={} with {}; predicted by the cost model, "
                       "per layer, forward + backward:\n{}",
                       results.front().name, layout.cp(), tuner::describe_sharding(*sharding),
                       reports::shard_summary_text(sharded.summary(), *sharding));
    }
    if (!o.json_path.empty()) {
        auto j = reports::pack_json(ctx, results, inputs, o.json_steps);
        if (sharding)
            j["sharding"] = {{"spec", tuner::to_json(*sharding)},
                             {"cp", layout.cp()},
                             {"predicted", reports::shard_summary_json(sharded.summary())}};
        wlb::write_file_atomic(o.json_path, j.dump(2) + "\n");
    }
    if (!o.html_path.empty()) { // the same report with its per-step measures, which it charts
        reports::write_html_report(reports::html_kind::pack,
                                   reports::pack_json(ctx, results, inputs, true), o.html_path);
        if (o.json_path != "-")
            fmt::print("HTML report: {} (one self-contained page; opens offline)\n", o.html_path);
    }
}

} // namespace

registered_command register_pack(CLI::App& app, error_sink& sink) {
    auto o = std::make_shared<pack_options>();
    auto* sub = app.add_subcommand(
        "pack", "Pack a document stream into training steps under a packing policy, write the "
                "plan and report predicted imbalance, delay and packing time");
    add_data_option(*sub, o->data);
    auto tuned_away = add_job_options(*sub, o->job); // what --config replaces
    append_options(tuned_away, add_stream_options(*sub, o->stream));
    append_options(tuned_away, add_packing_options(*sub, o->packing, "-p,--policy"));
    sub->add_option("-n,--steps", o->steps, "Steps to pack (0: until the data ends)")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    sub->add_option("-o,--output", o->plan_path,
                    "Write the plan (wlbtune.plan/1 JSON Lines, gzip if it ends in .gz) of "
                    "--policy to this file ('-' for stdout)");
    sub->add_option("--json", o->json_path,
                    "Write the summary as versioned JSON (wlbtune.pack/1) to this file ('-' for "
                    "stdout)");
    sub->add_flag("--json-steps", o->json_steps, "Include per-step measures in the JSON summary");
    sub->add_option("--html", o->html_path,
                    "Write an HTML report to FILE: imbalance and delay distributions per policy, "
                    "imbalance over the run (with --compare: side by side; one self-contained "
                    "page)");
    sub->add_option("--compare", o->compare,
                    "Also run these policies on the same documents and print them side by side, "
                    "e.g. plain,fixed-greedy,varlen,wlb")
        ->delimiter(',');
    append_options(tuned_away, add_sharding_options(*sub, o->sharding, sharding_use::optional));
    auto* config = sub->add_option(
        "--config", o->config,
        "Apply a tuned config (wlbtune.config/1 from wlbtune tune): its layout, context, model, "
        "hardware, data order, packing and sharding; --data may point it at other data");
    for (auto* opt : tuned_away)
        config->excludes(opt);
    sub->footer("Examples:\n"
                "  wlbtune pack --steps 200 --compare plain,fixed-greedy,varlen,wlb\n"
                "  wlbtune pack --layout tp=8,cp=4,pp=4,dp=1 --sharding adaptive -o plan.jsonl\n"
                "  wlbtune pack --data json:lengths.json --policy wlb --thresholds 24k,64k "
                "-o plan.jsonl.gz --json summary.json");
    return {sub, [o, &sink, sub] {
                sink.json_path = o->json_path == "-" ? "" : o->json_path;
                sink.json_stdout = o->json_path == "-";
                if (o->json_path == "-" && o->plan_path == "-")
                    throw usage_error("--json - and -o - cannot both write to standard output");
                o->data_given = sub->get_option("--data")->count() > 0;
                run_pack(*o);
            }};
}

} // namespace wlb::cli
