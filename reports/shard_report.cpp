#include "reports/shard_report.hpp"

#include "base/provenance.hpp"
#include "reports/table.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace wlb::reports {

std::string applied_text(const tuner::shard_decision& d) {
    std::string s(tuner::to_string(d.applied));
    if (d.applied == tuner::sharding_policy::hybrid)
        s += d.threshold_tokens ? fmt::format(" (>= {})", *d.threshold_tokens) : " (all whole)";
    if (d.fell_back)
        s += " (hybrid fell back)";
    return s;
}

nlohmann::json shard_record_json(const tuner::shard_record& r, bool shapes) {
    const auto& m = r.metrics;
    nlohmann::json ranks = nlohmann::json::array();
    for (std::size_t i = 0; i < m.ranks.size(); ++i) {
        const auto& load = m.ranks[i];
        nlohmann::json j = {{"cp_rank", i},
                            {"tokens", load.tokens},
                            {"causal_pairs", load.causal_pairs},
                            {"predicted_attention_seconds", load.attention_seconds},
                            {"predicted_linear_seconds", load.linear_seconds}};
        if (shapes) {
            j["cu_seqlens_q"] = load.cu_seqlens_q;
            j["cu_seqlens_k"] = load.cu_seqlens_k;
            nlohmann::json chunks = nlohmann::json::array();
            for (const auto& c : r.decision.sharded.ranks[i].chunks)
                chunks.push_back({c.doc_id, c.q_offset, c.q_tokens});
            j["chunks"] = std::move(chunks);
        }
        ranks.push_back(std::move(j));
    }
    nlohmann::json j = {{"step", r.step},
                        {"replica", r.replica},
                        {"micro_batch", r.micro_batch},
                        {"documents", r.documents},
                        {"tokens", r.tokens},
                        {"applied", tuner::to_string(r.decision.applied)},
                        {"fell_back", r.decision.fell_back},
                        {"attention_imbalance", m.attention_imbalance},
                        {"token_imbalance", m.token_imbalance},
                        {"predicted_seconds", m.predicted_seconds},
                        {"ranks", std::move(ranks)}};
    if (r.decision.applied == tuner::sharding_policy::hybrid)
        j["threshold_tokens"] = r.decision.threshold_tokens
                                    ? nlohmann::json(*r.decision.threshold_tokens)
                                    : nlohmann::json(nullptr);
    return j;
}

nlohmann::json shard_summary_json(const tuner::shard_run_summary& s) {
    nlohmann::json applied = nlohmann::json::object();
    for (const auto p : {tuner::sharding_policy::per_seq, tuner::sharding_policy::per_doc,
                         tuner::sharding_policy::hybrid})
        applied[std::string(tuner::to_string(p))] = s.applied[static_cast<std::size_t>(p)];
    nlohmann::json worst_at = nullptr;
    if (s.worst_step >= 0)
        worst_at = {{"step", s.worst_step},
                    {"replica", s.worst_replica},
                    {"micro_batch", s.worst_micro_batch}};
    return {
        {"micro_batches", s.micro_batches},
        {"tokens", s.tokens},
        {"attention_imbalance",
         {{"mean", s.mean_attention_imbalance},
          {"worst", s.worst_attention_imbalance},
          {"worst_at", std::move(worst_at)},
          {"weighted", s.weighted_attention_imbalance}}},
        {"token_imbalance", {{"mean", s.mean_token_imbalance}, {"worst", s.worst_token_imbalance}}},
        {"predicted_seconds_per_layer", s.predicted_seconds},
        {"applied", std::move(applied)},
        {"hybrid_fell_back", s.fell_back}};
}

namespace {

std::string share(std::int64_t n, std::int64_t total) {
    return fmt::format("{} ({:.1f}%)", n,
                       total > 0 ? 100.0 * static_cast<double>(n) / static_cast<double>(total)
                                 : 0.0);
}

} // namespace

std::string shard_summary_text(const tuner::shard_run_summary& s,
                               const tuner::sharding_spec& spec) {
    std::string out;
    out += fmt::format("  CP imbalance (max/mean over CP ranks of predicted attention seconds): "
                       "mean {:.4f}, worst {:.4f}",
                       s.mean_attention_imbalance, s.worst_attention_imbalance);
    if (s.worst_step >= 0)
        out += fmt::format(" (step {} dp {} mb {})", s.worst_step, s.worst_replica,
                           s.worst_micro_batch);
    out += fmt::format(", weighted {:.4f}\n", s.weighted_attention_imbalance);
    out += fmt::format("  token balance (max/mean over CP ranks of tokens): mean {:.4f}, worst "
                       "{:.4f}\n",
                       s.mean_token_imbalance, s.worst_token_imbalance);
    out += fmt::format("  predicted CP-group time (max over ranks of attention + linear), sum "
                       "over micro-batches: {:.3f} ms per layer\n",
                       s.predicted_seconds * 1e3);
    const auto n = [&](tuner::sharding_policy p) {
        return s.applied[static_cast<std::size_t>(p)];
    };
    using tuner::sharding_policy;
    switch (spec.policy) {
    case sharding_policy::per_seq:
    case sharding_policy::per_doc:
        out += fmt::format("  layout: {} on every micro-batch\n", tuner::to_string(spec.policy));
        break;
    case sharding_policy::adaptive:
        out += fmt::format("  adaptive picked: per-seq {}, per-doc {}\n",
                           share(n(sharding_policy::per_seq), s.micro_batches),
                           share(n(sharding_policy::per_doc), s.micro_batches));
        break;
    case sharding_policy::hybrid:
        out += fmt::format("  hybrid applied its own layout on {}; fell back to per-seq {}, "
                           "per-doc {}\n",
                           share(n(sharding_policy::hybrid), s.micro_batches),
                           n(sharding_policy::per_seq), n(sharding_policy::per_doc));
        break;
    }
    return out;
}

void shard_text_report::add(const tuner::shard_record& r) {
    if (static_cast<std::int64_t>(m_rows.size()) >= m_max_rows) {
        ++m_left_out;
        return;
    }
    const auto& m = r.metrics;
    m_rows.push_back(
        {fmt::format("{}", r.step), fmt::format("{}", r.replica), fmt::format("{}", r.micro_batch),
         fmt::format("{}", r.documents), fmt::format("{}", r.tokens), applied_text(r.decision),
         fmt::format("{}-{}", m.min_tokens, m.max_tokens), fmt::format("{:.4f}", m.token_imbalance),
         fmt::format("{:.4f}", m.attention_imbalance),
         fmt::format("{:.3f}", m.predicted_seconds * 1e3)});
}

std::string shard_text_report::render(const tuner::plan_shard_summary& s,
                                      const shard_report_context& ctx) const {
    using al = table::align;
    table t({"step", "dp", "mb", "docs", "tokens", "layout", "rank tokens", "token imb",
             "CP imb (pred)", "ms/layer (pred)"},
            {al::right, al::right, al::right, al::right, al::right, al::left, al::right, al::right,
             al::right, al::right});
    for (const auto& row : m_rows)
        t.add_row(row);
    std::string out = fmt::format("CP sharding of {}: {}\n", ctx.plan_path, ctx.source);
    out += fmt::format("model {} on {}, layout {}; times and imbalances are predicted by the cost "
                       "model (per layer, forward + backward), not measured\n\n",
                       ctx.model, ctx.hardware, ctx.layout);
    out += t.render();
    if (m_left_out > 0)
        out += fmt::format("... {} more micro-batches (--rows to show more, --json for all)\n",
                           m_left_out);
    out += fmt::format("\nrun: {} micro-batches, {} tokens\n", s.run.micro_batches, s.run.tokens);
    out += shard_summary_text(s.run, ctx.spec);
    if (s.recorded) {
        const auto& rec = *s.recorded;
        out += fmt::format("\nagainst the plan's recorded chunks: {}/{} micro-batches laid out "
                           "differently\n",
                           s.differing_micro_batches, rec.micro_batches);
        out += fmt::format(
            "  predicted time: recorded {:.3f} ms, this sharding {:.3f} ms per "
            "layer (speed-up over the recorded: {:.4f}x)\n",
            rec.predicted_seconds * 1e3, s.run.predicted_seconds * 1e3,
            s.run.predicted_seconds > 0.0 ? rec.predicted_seconds / s.run.predicted_seconds : 1.0);
        out += fmt::format("  CP imbalance mean: recorded {:.4f}, this sharding {:.4f}; worst: "
                           "recorded {:.4f}, this sharding {:.4f}\n",
                           rec.mean_attention_imbalance, s.run.mean_attention_imbalance,
                           rec.worst_attention_imbalance, s.run.worst_attention_imbalance);
    }
    return out;
}

nlohmann::json shard_json(const tuner::shard_request& request, const tuner::shard_outcome& outcome,
                          nlohmann::json records) {
    const auto& cost = outcome.cost;
    const auto& summary = outcome.summary;
    auto j = wlb::report_header(shard_schema, {wlb::identify_file(request.plan_path)});
    j["predicted"] = "every seconds figure is predicted by the cost model, not measured";
    j["plan"] = request.plan_path;
    j["source"] = outcome.choice.spec ? "policy" : "plan";
    j["source_text"] = outcome.choice.source;
    j["sharding"] = tuner::to_json(outcome.choice.reported);
    j["cp"] = cost.layout().cp();
    j["layout"] = cost.layout().spec();
    j["cost_model"] = cost.to_json();
    j["summary"] = shard_summary_json(summary.run);
    if (summary.recorded)
        j["recorded_comparison"] = {{"summary", shard_summary_json(*summary.recorded)},
                                    {"differing_micro_batches", summary.differing_micro_batches}};
    j["micro_batches"] = std::move(records);
    return j;
}

shard_report_context shard_context_of(const tuner::shard_request& request,
                                      const tuner::shard_outcome& outcome) {
    return {request.plan_path,         outcome.choice.source,        outcome.choice.reported,
            outcome.cost.model().name, outcome.cost.hardware().name, outcome.cost.layout().spec()};
}

} // namespace wlb::reports
