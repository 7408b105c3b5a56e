// How balanced and how delayed a packing is (issue 3, "Measures"), per step and over a run.
//
// Per step:
//   imbalance            max over the step's micro-batches (all replicas) of predicted forward
//                        latency (cost_model::micro_batch_fwd_seconds) / their mean. With
//                        micro-batches = PP this is the paper's (max x PP) / total. Predicted,
//                        not measured. 1 for a step whose micro-batches are all empty.
//   attention imbalance  the same ratio for attention work, sum of d^2 over the documents.
//   tokens, documents, micro-batch tokens (min, max) against the policy's limit (context or
//   S_max), documents waiting after the step, packing time (wall clock of packer::pack, which
//   includes drawing from the stream).
// Over a run:
//   imbalance mean, p50, p99, max over steps; per-token delay in iterations (step packed -
//   drawn_step, weighted by tokens): mean, p50, p99, max, and its exact sum in token-iterations;
//   documents delayed (delay > 0); documents waiting per step (mean, max); at the end, documents
//   and tokens still waiting; tokens per step against the budget; packing time per step.
#pragma once

#include "runtime/parallel/batch.hpp"
#include "tuner/packing/packer.hpp"

#include <cstdint>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <utility>
#include <vector>

namespace wlb::tuner {

class cost_model;

struct step_measures {
    std::int64_t step = 0;
    std::int64_t documents = 0;
    std::int64_t tokens = 0;
    double imbalance = 1.0;
    double attention_imbalance = 1.0;
    double max_fwd_seconds = 0.0;  ///< predicted, heaviest micro-batch, per layer
    double mean_fwd_seconds = 0.0; ///< predicted, per layer
    std::int64_t min_micro_batch_tokens = 0;
    std::int64_t max_micro_batch_tokens = 0;
    std::int64_t waiting_documents = 0; ///< drawn but not yet packed, after this step
    double pack_seconds = 0.0;          ///< measured wall clock of packer::pack
};

/// The balance figures of one step (documents, tokens, imbalance, micro-batch tokens); the
/// caller fills waiting_documents and pack_seconds.
step_measures measure_step(const runtime::global_batch& batch, const cost_model& costs);

struct quantiles {
    double mean = 0.0;
    double p50 = 0.0;
    double p99 = 0.0;
    double max = 0.0;
};

struct run_summary {
    std::int64_t steps = 0;
    std::int64_t documents = 0; ///< document placements in steps (plain's cut parts count each)
    std::int64_t tokens = 0;
    quantiles imbalance;
    quantiles attention_imbalance;
    quantiles delay_iterations;              ///< per token
    std::int64_t delay_token_iterations = 0; ///< exact sum over tokens of their delay
    /// The whole per-token delay distribution: (delay in iterations, tokens with that delay),
    /// by delay, zero included.
    std::vector<std::pair<std::int64_t, std::int64_t>> delay_histogram;
    std::int64_t delayed_documents = 0;  ///< placements with delay > 0
    double mean_waiting_documents = 0.0; ///< after each step
    std::int64_t max_waiting_documents = 0;
    std::int64_t waiting_documents_at_end = 0;
    std::int64_t waiting_tokens_at_end = 0;
    double mean_step_tokens = 0.0;
    std::int64_t step_budget_tokens = 0;
    std::int64_t max_micro_batch_tokens = 0;
    std::int64_t micro_batch_limit_tokens = 0;
    double mean_pack_seconds = 0.0;
    double max_pack_seconds = 0.0;
};

/// Accumulates step measures and the token-weighted delay distribution of a run.
class run_measures {
public:
    run_measures(const cost_model& costs, const packing_config& config);

    /// Records one emitted step.
    const step_measures& add_step(const runtime::global_batch& batch,
                                  std::int64_t waiting_documents, double pack_seconds);
    /// Records what still waits at the end of the run.
    void finish(const std::vector<runtime::document>& waiting);

    [[nodiscard]] const std::vector<step_measures>& steps() const noexcept { return m_steps; }
    [[nodiscard]] run_summary summary() const;

private:
    const cost_model& m_costs;
    packing_config m_config;
    std::vector<step_measures> m_steps;
    std::map<std::int64_t, std::int64_t> m_delay_tokens; // delay -> tokens
    std::int64_t m_delayed_documents = 0;
    std::int64_t m_waiting_documents = 0;
    std::int64_t m_waiting_tokens = 0;
};

nlohmann::json to_json(const run_summary& s);
nlohmann::json to_json(const step_measures& s);

} // namespace wlb::tuner
