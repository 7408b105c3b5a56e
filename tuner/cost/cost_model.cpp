#include "tuner/cost/cost_model.hpp"

#include "base/error.hpp"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace wlb::tuner {

cost_model::cost_model(runtime::model_spec model, hardware_config hardware, runtime::layout layout,
                       cost_options options)
    : m_model(std::move(model)), m_hardware(std::move(hardware)), m_layout(std::move(layout)),
      m_options(options) {
    WLB_EXPECTS(m_model.layers > 0 && m_model.hidden > 0, "model {} has no shape", m_model.name);
    WLB_EXPECTS(m_hardware.gemm_tflops > 0, "hardware {} has no GEMM rate", m_hardware.name);
    m_gemm_flops_per_token = 2.0 * m_model.layer_params() / m_layout.tp();
    const int group = m_layout.tp() * m_layout.cp();
    if (m_hardware.lockstep_penalty > 0.0 && group > 1 && m_hardware.lockstep_ranks > 1)
        m_lockstep_factor = 1.0 + m_hardware.lockstep_penalty * expected_normal_maximum(group) /
                                      expected_normal_maximum(m_hardware.lockstep_ranks);
}

double expected_normal_maximum(int n) {
    WLB_EXPECTS(n >= 1, "expected maximum of {} deviates", n);
    if (n == 1)
        return 0.0;
    // E[max] = integral of x n phi(x) Phi(x)^(n-1) dx, by the midpoint rule over [-10, 10]:
    // the integrand is smooth and negligible outside, so 4000 steps give 6 digits.
    constexpr int steps = 4000;
    constexpr double lo = -10.0, hi = 10.0, h = (hi - lo) / steps;
    const double inv_sqrt_2pi = 0.3989422804014327;
    double sum = 0.0;
    for (int i = 0; i < steps; ++i) {
        const double x = lo + (i + 0.5) * h;
        const double phi = inv_sqrt_2pi * std::exp(-0.5 * x * x);
        const double cdf = 0.5 * std::erfc(-x / std::sqrt(2.0));
        sum += x * n * phi * std::pow(cdf, n - 1);
    }
    return sum * h;
}

double cost_model::padded_tokens(std::int64_t q_tokens) const noexcept {
    const std::int64_t tile = m_hardware.attention_tile;
    return static_cast<double>((q_tokens + tile - 1) / tile * tile);
}

double cost_model::attention_fwd_flops(std::int64_t q_tokens, std::int64_t q_offset) const {
    return 4.0 * static_cast<double>(runtime::causal_pairs(q_tokens, q_offset)) * m_model.hidden /
           m_layout.tp();
}

double cost_model::attention_fwd_seconds(std::int64_t q_tokens, std::int64_t q_offset) const {
    if (q_tokens <= 0)
        return 0.0;
    const double n = padded_tokens(q_tokens);
    const double p = static_cast<double>(q_offset);
    const double pairs = n * p + n * (n + 1.0) / 2.0;
    const double flops = 4.0 * pairs * m_model.hidden / m_layout.tp();
    const double seconds = flops / (m_hardware.attention_fwd_tflops(n) * 1e12);
    if (m_hardware.attention_fwd_token_pairs <= 0.0)
        return seconds;
    return seconds + 4.0 * m_hardware.attention_fwd_token_pairs * n * m_model.hidden /
                         m_layout.tp() / (m_hardware.attention_fwd.back().tflops * 1e12);
}

double cost_model::attention_bwd_seconds(std::int64_t q_tokens, std::int64_t q_offset) const {
    if (!m_hardware.has_attention_terms())
        return attention_fwd_seconds(q_tokens, q_offset) * m_options.attention_bwd_flop_ratio /
               m_hardware.attention_bwd_rate_ratio;
    if (q_tokens <= 0)
        return 0.0;
    // Calibrated form: the backward's own rate by chunk length and its own per-token term.
    const double n = padded_tokens(q_tokens);
    const double p = static_cast<double>(q_offset);
    const double pairs = n * p + n * (n + 1.0) / 2.0;
    const double scale = m_options.attention_bwd_flop_ratio * 4.0 * m_model.hidden / m_layout.tp();
    const double long_rate = m_hardware.attention_bwd_tflops(
        m_hardware.attention_bwd.empty() ? m_hardware.attention_fwd.back().query_tokens
                                         : m_hardware.attention_bwd.back().query_tokens);
    return scale * pairs / (m_hardware.attention_bwd_tflops(n) * 1e12) +
           scale * m_hardware.attention_bwd_token_pairs * n / (long_rate * 1e12);
}

double cost_model::attention_fwd_seconds(const runtime::cp_shard& shard) const {
    double s = 0.0;
    for (const auto& c : shard.chunks)
        s += attention_fwd_seconds(c.q_tokens, c.q_offset);
    return s;
}

double cost_model::attention_bwd_seconds(const runtime::cp_shard& shard) const {
    if (!m_hardware.has_attention_terms())
        return attention_fwd_seconds(shard) * m_options.attention_bwd_flop_ratio /
               m_hardware.attention_bwd_rate_ratio;
    double s = 0.0;
    for (const auto& c : shard.chunks)
        s += attention_bwd_seconds(c.q_tokens, c.q_offset);
    return s;
}

double cost_model::linear_fwd_seconds(std::int64_t tokens) const {
    const double t = static_cast<double>(tokens);
    const double gemm = t * m_gemm_flops_per_token / (m_hardware.gemm_tflops * 1e12);
    // Sequence parallelism: element-wise work is split over the TP ranks.
    const double bytes = t * m_options.elementwise_hidden_passes * m_model.hidden *
                         m_options.bytes_per_element / m_layout.tp();
    return gemm + bytes / (m_hardware.hbm_gbytes_per_s * 1e9);
}

double cost_model::linear_bwd_seconds(std::int64_t tokens) const {
    const double t = static_cast<double>(tokens);
    const double gemm = m_options.gemm_bwd_flop_ratio * t * m_gemm_flops_per_token /
                        (m_hardware.gemm_tflops * m_hardware.gemm_bwd_rate() * 1e12);
    const double bytes = 2.0 * t * m_options.elementwise_hidden_passes * m_model.hidden *
                         m_options.bytes_per_element / m_layout.tp();
    return gemm + bytes / (m_hardware.hbm_gbytes_per_s * 1e9);
}

double cost_model::output_layer_fwd_seconds(std::int64_t tokens) const {
    const double flops = 2.0 * static_cast<double>(tokens) * m_model.hidden * m_model.vocab /
                         (m_options.split_output_layer ? m_layout.tp() : 1);
    const double rate = m_hardware.output_layer_tflops > 0.0 ? m_hardware.output_layer_tflops
                                                             : m_hardware.gemm_tflops;
    return flops / (rate * 1e12);
}

double cost_model::output_layer_bwd_seconds(std::int64_t tokens) const {
    return m_options.gemm_bwd_flop_ratio * output_layer_fwd_seconds(tokens) /
           m_hardware.output_layer_bwd_rate();
}

double cost_model::tp_comm_fwd_seconds(std::int64_t tokens) const {
    const int n = m_layout.tp();
    if (n <= 1)
        return 0.0;
    const double bytes = static_cast<double>(tokens) * m_model.hidden * m_options.bytes_per_element;
    const bool intra = intra_node(runtime::axis::tp);
    return 2.0 * collective_seconds(collective::all_gather, bytes, n, intra) +
           2.0 * collective_seconds(collective::reduce_scatter, bytes, n, intra);
}

double cost_model::cp_comm_fwd_seconds(std::int64_t total_tokens) const {
    const int n = m_layout.cp();
    if (n <= 1)
        return 0.0;
    const int kv_heads_per_rank = std::max(1, m_model.kv_heads / m_layout.tp());
    const double bytes = static_cast<double>(total_tokens) * 2.0 * kv_heads_per_rank *
                         m_model.head_dim() * m_options.bytes_per_element;
    return collective_seconds(collective::all_gather, bytes, n, intra_node(runtime::axis::cp));
}

bool cost_model::intra_node(runtime::axis a) const {
    const auto group = m_layout.group_of(0, a);
    return group.back() < m_hardware.gpus_per_node;
}

double cost_model::document_fwd_seconds(std::int64_t tokens) const {
    return attention_fwd_seconds(tokens, 0) + linear_fwd_seconds(tokens) +
           tp_comm_fwd_seconds(tokens);
}

double cost_model::micro_batch_fwd_seconds(const runtime::micro_batch& mb) const {
    double s = 0.0;
    for (const auto& d : mb.docs)
        s += document_fwd_seconds(d.tokens);
    return s;
}

double cost_model::collective_seconds(collective kind, double bytes, int group_size,
                                      bool intra_node) const {
    if (group_size <= 1 || bytes <= 0.0)
        return 0.0;
    const double bandwidth =
        (intra_node ? m_hardware.nvlink_gbytes_per_s : m_hardware.network_gbytes_per_s) * 1e9;
    const double latency =
        (intra_node ? m_hardware.nvlink_latency_us : m_hardware.network_latency_us) * 1e-6;
    const double n = group_size;
    double t = (n - 1.0) / n * bytes / bandwidth + (n - 1.0) * latency;
    if (kind == collective::all_reduce)
        t *= 2.0; // reduce-scatter then all-gather
    return t;
}

double cost_model::p2p_seconds(double bytes, bool intra_node) const {
    if (bytes <= 0.0)
        return 0.0;
    const double bandwidth =
        (intra_node ? m_hardware.nvlink_gbytes_per_s : m_hardware.network_gbytes_per_s) * 1e9;
    const double latency =
        (intra_node ? m_hardware.nvlink_latency_us : m_hardware.network_latency_us) * 1e-6;
    return bytes / bandwidth + latency;
}

nlohmann::json cost_model::to_json() const {
    nlohmann::json j = {
        {"schema", "wlbtune.cost_model/1"},
        {"flop_convention",
         "attention fwd = 4*pairs*hidden (exact causal pairs, query padded to the tile); "
         "attention bwd = 2.5x fwd; GEMM fwd = 2*tokens*weights; GEMM bwd = 2x fwd"},
        {"model", runtime::to_json(m_model)},
        {"hardware", tuner::to_json(m_hardware)},
        {"layout", {{"spec", m_layout.spec()}, {"order", m_layout.order_string()}}},
        {"options",
         {{"attention_bwd_flop_ratio", m_options.attention_bwd_flop_ratio},
          {"gemm_bwd_flop_ratio", m_options.gemm_bwd_flop_ratio},
          {"elementwise_hidden_passes", m_options.elementwise_hidden_passes},
          {"bytes_per_element", m_options.bytes_per_element}}}};
    if (!m_options.split_output_layer) // written only where it differs, as files before it
        j["options"]["split_output_layer"] = false;
    return j;
}

cost_model cost_model::from_json(const nlohmann::json& j, std::string_view where) {
    if (!j.is_object() || j.value("schema", "") != "wlbtune.cost_model/1")
        throw input_error(where,
                          "not a cost model (expected \"schema\": \"wlbtune.cost_model/1\")");
    for (const char* key : {"model", "hardware", "layout"})
        if (!j.contains(key))
            throw input_error(where, fmt::format("cost model field \"{}\" is missing", key));
    const auto& l = j["layout"];
    if (!l.is_object() || !l.contains("spec") || !l["spec"].is_string())
        throw input_error(where, "cost model field \"layout.spec\" must be a string");
    auto layout =
        runtime::layout::parse(l["spec"].get<std::string>(),
                               l.value("order", std::string(runtime::layout::default_order)));
    cost_options o;
    if (auto it = j.find("options"); it != j.end() && it->is_object()) {
        o.attention_bwd_flop_ratio =
            it->value("attention_bwd_flop_ratio", o.attention_bwd_flop_ratio);
        o.gemm_bwd_flop_ratio = it->value("gemm_bwd_flop_ratio", o.gemm_bwd_flop_ratio);
        o.elementwise_hidden_passes =
            it->value("elementwise_hidden_passes", o.elementwise_hidden_passes);
        o.bytes_per_element = it->value("bytes_per_element", o.bytes_per_element);
        o.split_output_layer = it->value("split_output_layer", o.split_output_layer);
    }
    return cost_model(runtime::model_from_json(j["model"], where),
                      hardware_from_json(j["hardware"], where), layout, o);
}

} // namespace wlb::tuner
