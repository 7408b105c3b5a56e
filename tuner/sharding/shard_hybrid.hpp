// Hybrid CP sharding (beyond the paper; WLB-LLM names it as future work): documents of at least
// `threshold` tokens are sharded per document (tuner/sharding/shard_per_doc.hpp, one remainder
// cursor), which evens their quadratic work exactly; shorter documents are kept whole (one chunk
// each: no tile padding of tiny pieces, no CP all-gather needed for them) and placed across the CP
// ranks longest first, each on the rank whose predicted seconds (attention + linear, forward +
// backward: the quantity shard_metrics::predicted_seconds takes the max of) would be smallest
// after adding it; ties go to the rank with fewer tokens, then the lower rank. Because the
// placement charges linear work by tokens, it evens tokens and attention together rather than
// attention alone. Memory is guarded apart: a document goes only to a rank whose tokens stay
// within max_token_imbalance x the mean (if none can take it, to the rank with fewest tokens),
// and a layout whose token balance ends beyond that bound is not chosen.
//
// Threshold: fixed (a token count), or auto: per micro-batch every distinct document length of
// the micro-batch is tried as the threshold, and "none" (every document whole); the best
// predicted_seconds wins (ties to the larger threshold: fewer documents cut). The threshold
// equal to the shortest length shards every document per document, so auto is never worse than
// per-doc.
//
// Guarantee: the hybrid sharder never predicts worse than the better of per-seq and per-doc on
// the same micro-batch: it measures both and falls back to the better one when its own layout
// predicts slower (shard_decision::fell_back).
#pragma once

#include "tuner/sharding/sharding.hpp"

#include <cstdint>
#include <optional>

namespace wlb::tuner {

/// The hybrid layout with a fixed threshold, without the fallback: documents with tokens >=
/// `threshold_tokens` per document, the others whole. Uses `cost`'s layout cp.
[[nodiscard]] runtime::sharded_micro_batch shard_hybrid(const runtime::micro_batch& mb,
                                                        std::int64_t threshold_tokens,
                                                        const cost_model& cost,
                                                        double max_token_imbalance = 1.05);

class hybrid_sharder final : public sharder {
public:
    /// `threshold_tokens` std::nullopt = auto.
    hybrid_sharder(const cost_model& cost, std::optional<std::int64_t> threshold_tokens,
                   double max_token_imbalance = 1.05)
        : m_cost(cost), m_threshold_tokens(threshold_tokens),
          m_max_token_imbalance(max_token_imbalance) {}
    [[nodiscard]] sharding_spec spec() const override {
        return {sharding_policy::hybrid, m_threshold_tokens, m_max_token_imbalance};
    }
    [[nodiscard]] shard_decision shard(const runtime::micro_batch& mb) const override;

private:
    const cost_model& m_cost;
    std::optional<std::int64_t> m_threshold_tokens;
    double m_max_token_imbalance;
};

} // namespace wlb::tuner
