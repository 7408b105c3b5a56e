// The `wlbtune shard` report: per micro-batch and over the run, the CP imbalance (max over CP
// ranks / mean of predicted attention seconds) and the token balance, as terminal text or JSON
// (schema "wlbtune.shard/1"; docs/formats.md). Every second in it is predicted by the cost
// model, not measured, and labelled so. `wlbtune pack --sharding` prints the run's lines too.
#pragma once

#include "tuner/plan/shard_plan.hpp"
#include "tuner/sharding/shard_run.hpp"

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace wlb::reports {

inline constexpr const char* shard_schema = "wlbtune.shard/1";

/// "per-seq", "per-doc", "hybrid (>= 8192)", "hybrid (all whole)", "per-doc (hybrid fell back)".
std::string applied_text(const tuner::shard_decision& d);

/// One micro-batch: ids, the applied layout, imbalances and per rank {tokens, causal_pairs,
/// predicted attention/linear seconds, and with `shapes` cu_seqlens_q, cu_seqlens_k and the
/// chunks [doc_id, q_offset, q_tokens]}.
nlohmann::json shard_record_json(const tuner::shard_record& r, bool shapes);
/// The run's figures: imbalances (mean, worst and where, weighted), token balance, predicted
/// seconds, how often each layout was applied.
nlohmann::json shard_summary_json(const tuner::shard_run_summary& s);

/// The run's summary as indented lines: CP imbalance, token balance, predicted time, and what
/// `spec` applied (adaptive: how often it picked per-seq and per-doc; hybrid: its own layout
/// against its fallbacks).
std::string shard_summary_text(const tuner::shard_run_summary& s, const tuner::sharding_spec& spec);

/// What the report is about.
struct shard_report_context {
    std::string plan_path;
    std::string source; ///< tuner::plan_sharding_choice::source
    tuner::sharding_spec spec;
    std::string model, hardware, layout;
};

/// The terminal table: one row per micro-batch (at most `max_rows`; the rest are counted),
/// then the run's summary and, when there is one, the comparison with the plan's recorded
/// chunks.
class shard_text_report {
public:
    explicit shard_text_report(std::int64_t max_rows) : m_max_rows(max_rows) {}
    void add(const tuner::shard_record& r);
    [[nodiscard]] std::string render(const tuner::plan_shard_summary& s,
                                     const shard_report_context& ctx) const;

private:
    std::int64_t m_max_rows;
    std::int64_t m_left_out = 0;
    std::vector<std::vector<std::string>> m_rows;
};

/// `wlbtune shard`'s JSON report (wlbtune.shard/1): the summary, the comparison with the
/// plan's recorded chunks when there is one, and every micro-batch's record in `records`.
nlohmann::json shard_json(const tuner::shard_request& request, const tuner::shard_outcome& outcome,
                          nlohmann::json records);
/// Its terminal report's context.
shard_report_context shard_context_of(const tuner::shard_request& request,
                                      const tuner::shard_outcome& outcome);

} // namespace wlb::reports
