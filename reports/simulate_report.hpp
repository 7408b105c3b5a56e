// The `simulate` reports: versioned JSON ("wlbtune.simulate/1") and terminal tables. Every
// figure is simulated (the cost model's prediction), and both say so.
//
// Three shapes: steps read from a sharded batch (--batch), one candidate packed and sharded
// from documents (--data: the same step figures plus the packing and CP sharding measures),
// and a comparison of candidates on the same documents (--compare: predicted step time and
// speedup over the baseline, plain + per-seq).
#pragma once

#include "base/provenance.hpp"
#include "tuner/search/compare_set.hpp"
#include "tuner/search/evaluate.hpp"
#include "tuner/search/simulate_job.hpp"

#include <nlohmann/json_fwd.hpp>
#include <span>
#include <string>
#include <string_view>

namespace wlb::reports {

inline constexpr std::string_view simulate_schema = "wlbtune.simulate/1";

struct simulate_context {
    std::string model;
    std::string hardware;
    std::string schedule;
    std::string partition;
    std::vector<std::string> faults;
    std::vector<wlb::input_identity> inputs;
    /// --data only: the document set every candidate ran on.
    const tuner::document_set* documents = nullptr;
};

/// One candidate of a comparison and its role (tuner::candidate::role).
struct compared {
    const tuner::evaluation* result = nullptr;
    std::string role;
};

/// --batch: the steps of a sharded batch.
nlohmann::json simulate_json(const tuner::cost_model& costs, const simulate_context& context,
                             const tuner::simulate_job_result& result);
std::string simulate_text(const tuner::cost_model& costs, const simulate_context& context,
                          const tuner::simulate_job_result& result);

/// --data: one candidate's steps, with "candidate", "data", "packing" and "sharding" objects;
/// with a non-empty `comparison` (its first entry is the baseline) also "compare": one object
/// per candidate with its predicted mean step time and speedup over the baseline.
nlohmann::json simulate_json(const tuner::cost_model& costs, const simulate_context& context,
                             const tuner::evaluation& chosen,
                             std::span<const compared> comparison = {});
std::string simulate_text(const tuner::cost_model& costs, const simulate_context& context,
                          const tuner::evaluation& chosen);
/// The comparison table: candidate, role, predicted mean step time, speedup over the first
/// entry, packing imbalance and delay, CP imbalance, bubble.
std::string compare_text(const tuner::cost_model& costs, const simulate_context& context,
                         std::span<const compared> comparison);

} // namespace wlb::reports
