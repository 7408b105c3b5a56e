// wlbtune pack's outputs: the summary table (one row per policy, side by side with --compare)
// and the versioned JSON summary "wlbtune.pack/1".
#pragma once

#include "base/provenance.hpp"
#include "tuner/job/pack_job.hpp"
#include "tuner/packing/pack_run.hpp"
#include "tuner/spec/job_spec.hpp"

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace wlb::reports {

/// Context shared by every row: what was packed and under which model.
struct pack_context {
    std::string data;   ///< the document stream's description
    std::string layout; ///< layout spec
    std::string model;
    std::string hardware;
    std::int64_t context_tokens = 0;
    std::int64_t documents_read = 0; ///< by the stream, over the longest run
};

/// A table, one row per result: predicted imbalance (mean, p99, max), attention imbalance,
/// per-token delay (mean, p50, p99, max), waiting documents, tokens per step against the budget,
/// largest micro-batch against its limit, packing time per step.
std::string pack_text(const pack_context& ctx, const std::vector<tuner::pack_result>& results);

/// {"schema": "wlbtune.pack/1", ...report header, "data", "layout", "model", "hardware",
///  "context_tokens", "results": [{"name", "packing", "summary", "steps": [...]}]}.
/// Per-step measures are included when `with_steps`.
nlohmann::json pack_json(const pack_context& ctx, const std::vector<tuner::pack_result>& results,
                         const std::vector<wlb::input_identity>& inputs, bool with_steps);

/// `wlbtune pack`'s terminal report: pack_text of every result, then the CP sharding of the
/// job's packing when it shards.
std::string pack_outcome_text(const tuner::job_spec& job, const tuner::pack_outcome& outcome);
/// `wlbtune pack`'s JSON report: pack_json, with "sharding" when the job shards.
nlohmann::json pack_outcome_json(const tuner::job_spec& job, const tuner::pack_outcome& outcome,
                                 bool with_steps);

} // namespace wlb::reports
