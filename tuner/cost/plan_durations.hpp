// The cost model as the step plan's duration_model (runtime/plan/duration_model.hpp): the adapter
// that lets runtime/ stay free of tuner/. Collectives and transfers are inside a node when all
// their ranks are (ranks fill nodes of hardware.gpus_per_node in order). Compute durations carry
// the cost model's lockstep_factor: what a TP or CP group loses waiting for its slowest member.
#pragma once

#include "runtime/plan/duration_model.hpp"
#include "tuner/cost/cost_model.hpp"

namespace wlb::tuner {

class cost_duration_model final : public runtime::duration_model {
public:
    explicit cost_duration_model(const cost_model& costs) : m_costs(costs) {}

    [[nodiscard]] runtime::plan_shape shape() const override;
    [[nodiscard]] double linear_fwd_seconds(std::int64_t tokens) const override;
    [[nodiscard]] double linear_bwd_seconds(std::int64_t tokens) const override;
    [[nodiscard]] double attention_fwd_seconds(const runtime::cp_shard& shard) const override;
    [[nodiscard]] double attention_bwd_seconds(const runtime::cp_shard& shard) const override;
    [[nodiscard]] double output_layer_fwd_seconds(std::int64_t tokens) const override;
    /// Backward of the output layer: gemm_bwd_flop_ratio x forward.
    [[nodiscard]] double output_layer_bwd_seconds(std::int64_t tokens) const override;
    [[nodiscard]] double collective_seconds(runtime::collective_kind kind, double bytes,
                                            std::span<const int> members) const override;
    [[nodiscard]] double p2p_seconds(double bytes, int src, int dst) const override;
    /// Adam with fp32 master weights: about 32 bytes of memory traffic per parameter (read
    /// param, grad, two moments; write them back and the bf16 copy) at HBM bandwidth.
    [[nodiscard]] double optimizer_seconds(double params) const override;

private:
    const cost_model& m_costs;
};

} // namespace wlb::tuner
