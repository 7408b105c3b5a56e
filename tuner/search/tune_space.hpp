// The tuner's search space (issue [tuner], "Space"): which packing and sharding configurations
// `wlbtune tune` considers for a dataset, model and layout.
//
//   packing    plain; fixed-greedy over windows 1, 2, 4, 8; varlen; wlb with 1-3 outlier queues
//              whose thresholds are placed at the dataset's length quantiles (the lengths below
//              which 95%, 99%, ... of the documents fall, rounded up to 1K)
//   S_max      a multiple of the context (1x .. 3x) for varlen and wlb, capped by the memory
//              model (tuner/cost/memory_model.hpp): the largest micro-batch whose activations fit
//   micro-batches per step   for varlen and wlb only, at the fixed step budget (dp x pp x
//              context tokens): pp, 2 pp, 4 pp micro-batches per replica. The fixed-length
//              policies keep pp sequences of the context (their micro-batch IS a sequence)
//   sharding   per-seq, per-doc, adaptive, hybrid with an automatic threshold or one placed at
//              the p90 / p99 length
//
// A coarse grid (few threshold values, three S_max factors) seeds the search; the fine grid
// (more quantiles, more factors) is where local refinement moves (tuner/search/tune.hpp).
#pragma once

#include "runtime/parallel/layout.hpp"
#include "tuner/packing/packer.hpp"
#include "tuner/search/compare_set.hpp"
#include "tuner/sharding/sharding.hpp"

#include <cstdint>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

namespace wlb::tuner {

// One point of the space is a tuner::candidate (tuner/search/compare_set.hpp): a packing
// configuration and a CP sharding policy (its role is left empty or names a baseline).

/// A canonical text of the candidate's every parameter: equal keys = the same configuration.
[[nodiscard]] std::string candidate_key(const candidate& c);
/// "wlb 2q [24k,64k] S_max=192k + adaptive" (tuner::describe_candidate).
[[nodiscard]] std::string candidate_name(const candidate& c);

/// Document quantiles where coarse and fine thresholds are placed.
inline constexpr double coarse_quantiles[] = {0.95, 0.99, 0.995, 0.999};
inline constexpr double fine_quantiles[] = {0.90,  0.95,  0.97,  0.98,  0.99,
                                            0.993, 0.995, 0.997, 0.998, 0.999};

/// The lengths at document quantiles `fractions` of `sorted_lengths` (nearest rank), rounded up
/// to a multiple of `granularity`, kept when within [granularity, context), without duplicates,
/// ascending.
[[nodiscard]] std::vector<std::int64_t>
quantile_thresholds(const std::vector<std::int64_t>& sorted_lengths,
                    std::span<const double> fractions, std::int64_t context_tokens,
                    std::int64_t granularity = 1024);

struct search_space {
    runtime::layout job_layout{1, 1, 1, 1};
    std::int64_t context_tokens = 131072;
    /// wlb candidates' delay bound (packing_config::max_delay_steps; tune --max-delay); 0: none.
    std::int64_t max_delay_steps = 0;
    /// Micro-batches per replica for varlen / wlb; the first is the layout's pp.
    std::vector<int> micro_batches;
    std::vector<double> coarse_smax_factors = {1.0, 1.5, 2.0};
    std::vector<double> fine_smax_factors = {1.0, 1.125, 1.25, 1.375, 1.5, 1.75, 2.0, 2.5, 3.0};
    /// Largest S_max (tokens) the memory model allows, per entry of micro_batches (0: none).
    std::vector<std::int64_t> smax_cap_tokens;
    std::vector<std::int64_t> coarse_thresholds;
    std::vector<std::int64_t> fine_thresholds;
    int max_queues = 3;
    std::vector<int> windows = {1, 2, 4, 8};
    std::vector<sharding_spec> shardings;

    /// The step budget every candidate holds: dp x pp x context tokens.
    [[nodiscard]] std::int64_t step_tokens() const noexcept {
        return static_cast<std::int64_t>(job_layout.dp()) * job_layout.pp() * context_tokens;
    }
    /// Index of `micro_batches` per replica in micro_batches, or -1.
    [[nodiscard]] int micro_batch_index(int micro_batches_per_replica) const noexcept;
    /// S_max of `factor` x context, or nullopt when it is above the memory cap for that count of
    /// micro-batches or below the mean micro-batch (the step budget could not be met).
    [[nodiscard]] std::optional<std::int64_t> smax_tokens(double factor,
                                                          int micro_batches_per_replica) const;
};

class memory_model;

/// The space for a layout, context and dataset (`sorted_lengths`: the sample's document lengths,
/// ascending): thresholds at its quantiles, the memory cap of S_max for each micro-batch count
/// (`vary_micro_batches` false: pp only), the sharding candidates.
[[nodiscard]] search_space make_search_space(const runtime::layout& l, std::int64_t context_tokens,
                                             const std::vector<std::int64_t>& sorted_lengths,
                                             const memory_model& memory, bool vary_micro_batches);

/// The sharding candidates: per-seq, per-doc, adaptive, hybrid auto, and hybrid at the p90 and
/// p99 lengths (rounded up to 1K, when at least 2 x cp tokens).
[[nodiscard]] std::vector<sharding_spec>
sharding_candidates(const std::vector<std::int64_t>& sorted_lengths, int cp);

/// packing_config with the layout's replicas and `micro_batches` per replica, holding the
/// space's step budget (budget_tokens set when micro_batches differs from pp).
[[nodiscard]] packing_config make_packing(const search_space& s, packing_policy policy,
                                          int micro_batches, std::int64_t smax_tokens,
                                          std::vector<std::int64_t> thresholds, int window = 1);

/// Baselines and the paper's settings (always evaluated):
///   plain + per-seq (Megatron / Plain-4D); fixed-greedy W + per-seq for every window;
///   the paper: wlb with 2 queues at the default thresholds (3C/16, C/2), S_max 1.5x, pp
///   micro-batches, adaptive sharding (WLB-LLM sections 4 and 5).
[[nodiscard]] candidate plain_candidate(const search_space& s);
[[nodiscard]] std::vector<candidate> fixed_greedy_candidates(const search_space& s);
[[nodiscard]] candidate paper_candidate(const search_space& s);

/// The coarse grid, every point with `sharding`: varlen and wlb (1-3 queues over the coarse
/// thresholds) at every coarse S_max factor within the cap and every micro-batch count.
[[nodiscard]] std::vector<candidate> coarse_packings(const search_space& s,
                                                     const sharding_spec& sharding);

/// `count` random points of the fine grid (wlb or varlen), drawn with `rng`, with `sharding`.
[[nodiscard]] std::vector<candidate> random_packings(const search_space& s,
                                                     const sharding_spec& sharding, int count,
                                                     std::mt19937_64& rng);

/// The neighbours of a varlen / wlb candidate on the fine grid: each threshold moved to the
/// adjacent fine value, a queue removed or added, S_max one fine factor up or down, the next
/// micro-batch count up or down. Same sharding. Other policies have none.
[[nodiscard]] std::vector<candidate> packing_neighbours(const search_space& s, const candidate& c);

} // namespace wlb::tuner
