// Sharding a whole run: one sharder over every micro-batch of every step, the per-micro-batch
// records and the run's summary (CP imbalance and token balance). The one loop the `shard`
// command, the benchmark and the tests share.
#pragma once

#include "runtime/parallel/batch.hpp"
#include "tuner/sharding/shard_metrics.hpp"
#include "tuner/sharding/sharding.hpp"

#include <array>
#include <cstdint>
#include <functional>

namespace wlb::tuner {

/// One sharded micro-batch and its predicted cost.
struct shard_record {
    std::int64_t step = 0;
    int replica = 0;     ///< DP replica
    int micro_batch = 0; ///< index inside the replica
    std::int64_t documents = 0;
    std::int64_t tokens = 0;
    shard_decision decision;
    shard_metrics metrics;
};

/// Over a run. Imbalances are per micro-batch (max over CP ranks / mean); the run's figures are
/// their mean and worst, and the weighted one: sum of max / sum of mean over the micro-batches.
struct shard_run_summary {
    std::int64_t micro_batches = 0;
    std::int64_t tokens = 0;
    double mean_attention_imbalance = 1.0;
    double worst_attention_imbalance = 1.0;
    /// Where the worst CP imbalance is (the first such micro-batch); all -1 when no
    /// micro-batch was above 1.
    std::int64_t worst_step = -1;
    int worst_replica = -1;
    int worst_micro_batch = -1;
    double weighted_attention_imbalance = 1.0;
    double mean_token_imbalance = 1.0;
    double worst_token_imbalance = 1.0;
    /// Sum over micro-batches of shard_metrics::predicted_seconds (per layer, fwd + bwd).
    double predicted_seconds = 0.0;
    /// How often each layout was applied, indexed by sharding_policy (adaptive picks per-seq or
    /// per-doc; hybrid applies hybrid or falls back).
    std::array<std::int64_t, 4> applied{};
    std::int64_t fell_back = 0; ///< hybrid fallbacks
};

class shard_run_accumulator {
public:
    void add(const shard_record& r);
    [[nodiscard]] shard_run_summary summary() const;

private:
    shard_run_summary m_sum;
    double m_attention_imbalance_sum = 0.0;
    double m_token_imbalance_sum = 0.0;
    double m_max_attention_sum = 0.0;
    double m_mean_attention_sum = 0.0;
};

using shard_record_sink = std::function<void(const shard_record&)>;

/// Measures `decision` for micro-batch `mb` (index `micro_batch` of DP replica `replica` of
/// `step`) with `cost`.
[[nodiscard]] shard_record make_shard_record(std::int64_t step, int replica, int micro_batch,
                                             const runtime::micro_batch& mb,
                                             shard_decision decision, const cost_model& cost);

/// Shards every micro-batch of `batch` with `s`, measures it with `cost`, hands each record to
/// `sink` and to `acc`, and returns the decisions (what a plan records for the step).
step_sharding shard_step(const runtime::global_batch& batch, const sharder& s,
                         const cost_model& cost, shard_run_accumulator& acc,
                         const shard_record_sink& sink = {});

/// The same for decisions made elsewhere (a plan's recorded chunks): `decisions` has the shape
/// of `batch` ([replica][micro-batch]); each is measured with `cost`.
void measure_step(const runtime::global_batch& batch, const step_sharding& decisions,
                  const cost_model& cost, shard_run_accumulator& acc,
                  const shard_record_sink& sink = {});

} // namespace wlb::tuner
