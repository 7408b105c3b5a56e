#include "reports/pack_report.hpp"

#include "reports/shard_report.hpp"
#include "reports/table.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace wlb::reports {

std::string pack_text(const pack_context& ctx, const std::vector<tuner::pack_result>& results) {
    std::string out = fmt::format(
        "packing {} | model {} on {} | layout {} | context {} tokens\n"
        "imbalance = max / mean predicted forward latency over a step's micro-batches (predicted "
        "by the cost model, not measured); delay in iterations, per token\n\n",
        ctx.data, ctx.model, ctx.hardware, ctx.layout, ctx.context_tokens);
    using a = table::align;
    table t({"policy", "steps", "imbalance", "p99", "max", "attn imb.", "delay", "p50", "p99",
             "max", "waiting", "tokens/step", "max mb tokens", "pack us/step"},
            {a::left, a::right, a::right, a::right, a::right, a::right, a::right, a::right,
             a::right, a::right, a::right, a::right, a::right, a::right});
    for (const auto& r : results) {
        const auto& s = r.summary;
        t.add_row({r.name, fmt::format("{}", s.steps), fmt::format("{:.3f}", s.imbalance.mean),
                   fmt::format("{:.3f}", s.imbalance.p99), fmt::format("{:.3f}", s.imbalance.max),
                   fmt::format("{:.3f}", s.attention_imbalance.mean),
                   fmt::format("{:.3f}", s.delay_iterations.mean),
                   fmt::format("{:.0f}", s.delay_iterations.p50),
                   fmt::format("{:.0f}", s.delay_iterations.p99),
                   fmt::format("{:.0f}", s.delay_iterations.max),
                   fmt::format("{:.1f} / {}", s.mean_waiting_documents, s.waiting_documents_at_end),
                   fmt::format("{:.0f} / {}", s.mean_step_tokens, s.step_budget_tokens),
                   fmt::format("{} / {}", s.max_micro_batch_tokens, s.micro_batch_limit_tokens),
                   fmt::format("{:.1f}", s.mean_pack_seconds * 1e6)});
    }
    out += t.render();
    out += "\nwaiting: documents drawn but not packed, mean after each step / at the end; "
           "tokens/step: mean / budget; max mb tokens: largest micro-batch / its limit\n";
    return out;
}

nlohmann::json pack_json(const pack_context& ctx, const std::vector<tuner::pack_result>& results,
                         const std::vector<wlb::input_identity>& inputs, bool with_steps) {
    auto j = wlb::report_header("wlbtune.pack/1", inputs);
    j["data"] = ctx.data;
    j["layout"] = ctx.layout;
    j["model"] = ctx.model;
    j["hardware"] = ctx.hardware;
    j["context_tokens"] = ctx.context_tokens;
    j["documents_read"] = ctx.documents_read;
    j["note"] = "imbalance and forward seconds are predicted by the cost model; pack_seconds is "
                "measured wall clock";
    auto& rows = j["results"] = nlohmann::json::array();
    for (const auto& r : results) {
        nlohmann::json row = {{"name", r.name},
                              {"packing", tuner::to_json(r.config)},
                              {"summary", tuner::to_json(r.summary)}};
        if (with_steps) {
            auto& steps = row["steps"] = nlohmann::json::array();
            for (const auto& s : r.steps)
                steps.push_back(tuner::to_json(s));
        }
        rows.push_back(std::move(row));
    }
    return j;
}

namespace {

pack_context context_of(const tuner::job_spec& job, const tuner::pack_outcome& outcome) {
    return {outcome.data,      job.layout.spec(),  job.model.name,
            job.hardware.name, job.context_tokens, outcome.documents_read};
}

} // namespace

std::string pack_outcome_text(const tuner::job_spec& job, const tuner::pack_outcome& outcome) {
    auto text = pack_text(context_of(job, outcome), outcome.results);
    if (job.sharding && outcome.sharding)
        text += fmt::format("\nCP sharding of {} over cp={} with {}; predicted by the cost model, "
                            "per layer, forward + backward:\n{}",
                            outcome.results.front().name, job.layout.cp(),
                            tuner::describe_sharding(*job.sharding),
                            shard_summary_text(*outcome.sharding, *job.sharding));
    return text;
}

nlohmann::json pack_outcome_json(const tuner::job_spec& job, const tuner::pack_outcome& outcome,
                                 bool with_steps) {
    auto j = pack_json(context_of(job, outcome), outcome.results, outcome.inputs, with_steps);
    if (job.sharding && outcome.sharding)
        j["sharding"] = {{"spec", tuner::to_json(*job.sharding)},
                         {"cp", job.layout.cp()},
                         {"predicted", shard_summary_json(*outcome.sharding)}};
    return j;
}

} // namespace wlb::reports
