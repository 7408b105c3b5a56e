// Adaptive CP sharding (WLB-LLM section 5.2): per micro-batch, predict both per-seq and per-doc
// and apply the faster. The prediction is the cost model's: every chunk's query length padded
// to the kernel tile (128), its FLOPs divided by the achieved rate for that padded length (which
// jumps between 128 and 256 on H100), so per-doc's many short chunks of short documents are
// charged what they really cost. The comparison is shard_metrics::predicted_seconds (max over
// ranks of attention + linear, forward + backward); both layouts hold the same token counts up
// to one token per rank, so this is the paper's attention-latency comparison. Ties go to
// per-seq (no re-layout of the packed sequence).
#pragma once

#include "tuner/sharding/sharding.hpp"

namespace wlb::tuner {

class adaptive_sharder final : public sharder {
public:
    explicit adaptive_sharder(const cost_model& cost) : m_cost(cost) {}
    [[nodiscard]] sharding_spec spec() const override { return {sharding_policy::adaptive, {}}; }
    [[nodiscard]] shard_decision shard(const runtime::micro_batch& mb) const override;

private:
    const cost_model& m_cost;
};

} // namespace wlb::tuner
