#include "tuner/cost/memory_model.hpp"

#include "base/error.hpp"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

namespace wlb::tuner {
namespace {

// bf16 weights + fp32 gradients, per parameter; Adam's fp32 master weights and two moments,
// sharded over the ranks holding the same weights (distributed optimizer).
constexpr double weight_and_grad_bytes = 2.0 + 4.0;
constexpr double optimizer_bytes = 12.0;
constexpr double logits_bytes = 4.0; // fp32 logits per vocabulary entry per token

} // namespace

memory_model::memory_model(runtime::model_spec model, runtime::layout layout,
                           const hardware_config& hardware, memory_options options,
                           runtime::stage_partition partition)
    : m_model(std::move(model)), m_layout(std::move(layout)), m_partition(std::move(partition)) {
    const int chunks = m_layout.pp() * m_layout.vpp();
    if (m_partition.layers.empty())
        m_partition = runtime::make_stage_partition("even", m_model.layers, chunks);
    WLB_EXPECTS(m_partition.chunks() == chunks, "partition has {} chunks, layout needs {}",
                m_partition.chunks(), chunks);
    if (options.memory_gbytes < 0.0 || options.reserve_fraction < 0.0 ||
        options.reserve_fraction >= 1.0)
        throw input_error("memory: memory per rank must be positive and the reserve in [0, 1)");
    const double gbytes =
        options.memory_gbytes > 0.0 ? options.memory_gbytes : hardware.memory_gbytes;
    m_usable_bytes = gbytes * 1e9 * (1.0 - options.reserve_fraction);
}

double memory_model::activation_bytes_per_token_layer() const noexcept {
    const double h = m_model.hidden;
    const double kv = static_cast<double>(m_model.kv_heads) * m_model.head_dim();
    const double f = m_model.ffn;
    const double mlp = m_model.gated_mlp ? 6.0 * f : 4.0 * f; // gate+up+act, or up+act
    return (10.0 * h + 4.0 * kv + mlp) / m_layout.tp();
}

int memory_model::in_flight(int stage, int micro_batches) const noexcept {
    const int p = m_layout.pp();
    const int v = m_layout.vpp();
    if (v == 1)
        return std::max(1, std::min(micro_batches, p - stage));
    const int warmup = 2 * (p - stage - 1) + (v - 1) * p; // Megatron's order, N = P
    return std::max(1, std::min(micro_batches * v, warmup + 1));
}

double memory_model::static_bytes(int stage) const noexcept {
    const int p = m_layout.pp();
    double layers = 0.0;
    for (int v = 0; v < m_layout.vpp(); ++v)
        layers += m_partition.layers[static_cast<std::size_t>(v * p + stage)];
    double params = layers * m_model.layer_params() / m_layout.tp();
    const double embedding = static_cast<double>(m_model.vocab) * m_model.hidden / m_layout.tp();
    if (stage == 0)
        params += embedding;
    if (stage == p - 1)
        params += embedding;
    const double shards = static_cast<double>(m_layout.dp()) * m_layout.cp();
    return params * (weight_and_grad_bytes + optimizer_bytes / shards);
}

memory_estimate memory_model::estimate(std::int64_t limit_tokens, int micro_batches,
                                       std::int64_t replica_budget_tokens,
                                       double token_imbalance) const {
    WLB_EXPECTS(micro_batches >= 1 && limit_tokens >= 0 && token_imbalance >= 1.0,
                "memory estimate: micro_batches {} limit {} imbalance {}", micro_batches,
                limit_tokens, token_imbalance);
    memory_estimate out;
    out.usable_bytes = m_usable_bytes;
    const int p = m_layout.pp();
    const int v = m_layout.vpp();
    const double per_token_layer = activation_bytes_per_token_layer();
    const double cp = m_layout.cp();
    for (int s = 0; s < p; ++s) {
        stage_memory m;
        m.stage = s;
        m.static_bytes = static_bytes(s);
        m.in_flight = in_flight(s, micro_batches);
        int chunk_layers = 0;
        for (int c = 0; c < v; ++c)
            chunk_layers =
                std::max(chunk_layers, m_partition.layers[static_cast<std::size_t>(c * p + s)]);
        // The in-flight micro-batches hold at most k x limit tokens, and never more than the
        // replica's step (each micro-batch appears in at most V of the chunks in flight).
        const double tokens =
            std::min(static_cast<double>(m.in_flight) * static_cast<double>(limit_tokens),
                     static_cast<double>(v) * static_cast<double>(replica_budget_tokens));
        const double rank_tokens = tokens / cp * token_imbalance;
        m.activation_bytes = rank_tokens * chunk_layers * per_token_layer;
        if (s == p - 1) // fp32 logits of the micro-batch in the output layer
            m.activation_bytes += static_cast<double>(limit_tokens) / cp * token_imbalance *
                                  logits_bytes * m_model.vocab / m_layout.tp();
        if (m.total_bytes() > out.peak_bytes) {
            out.peak_bytes = m.total_bytes();
            out.peak_stage = s;
        }
        out.stages.push_back(m);
    }
    return out;
}

std::int64_t memory_model::max_limit_tokens(int micro_batches, std::int64_t replica_budget_tokens,
                                            double token_imbalance,
                                            std::int64_t granularity) const {
    WLB_EXPECTS(granularity >= 1, "granularity {}", granularity);
    auto fits = [&](std::int64_t limit) {
        return estimate(limit, micro_batches, replica_budget_tokens, token_imbalance).fits();
    };
    std::int64_t lo = 0; // fits (0 tokens: static memory only, checked below)
    std::int64_t hi = (replica_budget_tokens + granularity - 1) / granularity;
    if (!fits(granularity))
        return 0;
    if (fits(hi * granularity))
        return std::min(hi * granularity, replica_budget_tokens);
    lo = 1; // in units of granularity: fits(lo), !fits(hi)
    while (hi - lo > 1) {
        const auto mid = lo + (hi - lo) / 2;
        (fits(mid * granularity) ? lo : hi) = mid;
    }
    return lo * granularity;
}

nlohmann::json to_json(const memory_estimate& m) {
    auto stages = nlohmann::json::array();
    for (const auto& s : m.stages)
        stages.push_back({{"stage", s.stage},
                          {"static_gbytes", s.static_bytes / 1e9},
                          {"activation_gbytes", s.activation_bytes / 1e9},
                          {"in_flight", s.in_flight}});
    return {{"peak_gbytes", m.peak_bytes / 1e9},
            {"peak_stage", m.peak_stage},
            {"usable_gbytes", m.usable_bytes / 1e9},
            {"fits", m.fits()},
            {"stages", stages}};
}

} // namespace wlb::tuner
