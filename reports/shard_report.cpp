#include "reports/shard_report.hpp"

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
    for (const auto& name : tuner::sharding_policy_names()) {
        const auto p = tuner::parse_sharding_policy(name, "policy");
        if (p != tuner::sharding_policy::adaptive)
            applied[name] = s.applied[static_cast<std::size_t>(p)];
    }
    return {
        {"micro_batches", s.micro_batches},
        {"tokens", s.tokens},
        {"attention_imbalance",
         {{"mean", s.mean_attention_imbalance},
          {"worst", s.worst_attention_imbalance},
          {"weighted", s.weighted_attention_imbalance}}},
        {"token_imbalance", {{"mean", s.mean_token_imbalance}, {"worst", s.worst_token_imbalance}}},
        {"predicted_seconds_per_layer", s.predicted_seconds},
        {"applied", std::move(applied)},
        {"hybrid_fell_back", s.fell_back}};
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
         fmt::format("{}-{}", m.min_tokens, m.max_tokens), fmt::format("{:.3f}", m.token_imbalance),
         fmt::format("{:.3f}", m.attention_imbalance),
         fmt::format("{:.3f}", m.predicted_seconds * 1e3)});
}

std::string shard_text_report::render(const tuner::shard_run_summary& s,
                                      const tuner::sharding_spec& spec, int cp) const {
    using al = table::align;
    table t({"step", "dp", "mb", "docs", "tokens", "layout", "rank tokens", "token imb",
             "attn imb (pred)", "ms/layer (pred)"},
            {al::right, al::right, al::right, al::right, al::right, al::left, al::right, al::right,
             al::right, al::right});
    for (const auto& row : m_rows)
        t.add_row(row);
    std::string out = fmt::format("CP sharding: policy {}, cp={} (predicted by the cost model, "
                                  "per layer, forward + backward)\n",
                                  tuner::to_json(spec).dump(), cp);
    out += t.render();
    if (m_left_out > 0)
        out += fmt::format("... {} more micro-batches (--rows to show more, --json for all)\n",
                           m_left_out);
    out += fmt::format("\nrun: {} micro-batches, {} tokens\n", s.micro_batches, s.tokens);
    out += fmt::format("  CP imbalance (pred. attention, max/mean over ranks): mean {:.4f}, "
                       "worst {:.4f}, weighted {:.4f}\n",
                       s.mean_attention_imbalance, s.worst_attention_imbalance,
                       s.weighted_attention_imbalance);
    out += fmt::format("  token balance (max/mean tokens over ranks):          mean {:.4f}, "
                       "worst {:.4f}\n",
                       s.mean_token_imbalance, s.worst_token_imbalance);
    out += fmt::format("  predicted CP-group time, sum over micro-batches: {:.3f} ms per layer\n",
                       s.predicted_seconds * 1e3);
    out += fmt::format("  layouts applied: per-seq {}, per-doc {}, hybrid {}",
                       s.applied[static_cast<std::size_t>(tuner::sharding_policy::per_seq)],
                       s.applied[static_cast<std::size_t>(tuner::sharding_policy::per_doc)],
                       s.applied[static_cast<std::size_t>(tuner::sharding_policy::hybrid)]);
    if (spec.policy == tuner::sharding_policy::hybrid)
        out += fmt::format(" (hybrid fell back {} times)", s.fell_back);
    out += "\n";
    return out;
}

} // namespace wlb::reports
