#include "tuner/cost/plan_durations.hpp"

#include <algorithm>

namespace wlb::tuner {

runtime::plan_shape cost_duration_model::shape() const {
    const auto& m = m_costs.model();
    const int tp = m_costs.layout().tp();
    const double element = m_costs.options().bytes_per_element;
    runtime::plan_shape s;
    s.layers = m.layers;
    s.pp_bytes_per_token = static_cast<double>(m.hidden) * element / tp;
    s.tp_bytes_per_token = static_cast<double>(m.hidden) * element;
    const int kv_heads_per_rank = std::max(1, m.kv_heads / tp);
    s.kv_bytes_per_token = 2.0 * kv_heads_per_rank * m.head_dim() * element;
    s.layer_params = m.layer_params() / tp;
    s.embedding_params = static_cast<double>(m.vocab) * m.hidden / tp;
    s.output_params = s.embedding_params;
    s.grad_bytes_per_param = element;
    return s;
}

double cost_duration_model::linear_fwd_seconds(std::int64_t tokens) const {
    return m_costs.linear_fwd_seconds(tokens) * m_costs.lockstep_factor();
}
double cost_duration_model::linear_bwd_seconds(std::int64_t tokens) const {
    return m_costs.linear_bwd_seconds(tokens) * m_costs.lockstep_factor();
}
double cost_duration_model::attention_fwd_seconds(const runtime::cp_shard& shard) const {
    return m_costs.attention_fwd_seconds(shard) * m_costs.lockstep_factor();
}
double cost_duration_model::attention_bwd_seconds(const runtime::cp_shard& shard) const {
    return m_costs.attention_bwd_seconds(shard) * m_costs.lockstep_factor();
}
double cost_duration_model::output_layer_fwd_seconds(std::int64_t tokens) const {
    return m_costs.output_layer_fwd_seconds(tokens) * m_costs.lockstep_factor();
}
double cost_duration_model::output_layer_bwd_seconds(std::int64_t tokens) const {
    return m_costs.output_layer_bwd_seconds(tokens) * m_costs.lockstep_factor();
}

double cost_duration_model::collective_seconds(runtime::collective_kind kind, double bytes,
                                               std::span<const int> members) const {
    if (members.size() < 2)
        return 0.0;
    const int per_node = m_costs.hardware().gpus_per_node;
    const auto [lo, hi] = std::minmax_element(members.begin(), members.end());
    const bool intra = *lo / per_node == *hi / per_node;
    const collective k = kind == runtime::collective_kind::all_reduce ? collective::all_reduce
                         : kind == runtime::collective_kind::all_gather
                             ? collective::all_gather
                             : collective::reduce_scatter;
    return m_costs.collective_seconds(k, bytes, static_cast<int>(members.size()), intra);
}

double cost_duration_model::p2p_seconds(double bytes, int src, int dst) const {
    const int per_node = m_costs.hardware().gpus_per_node;
    return m_costs.p2p_seconds(bytes, src / per_node == dst / per_node);
}

double cost_duration_model::optimizer_seconds(double params) const {
    return params * 32.0 / (m_costs.hardware().hbm_gbytes_per_s * 1e9);
}

} // namespace wlb::tuner
