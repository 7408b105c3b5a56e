// A duration model with fixed, simple durations for closed-form tests of the step plan and
// the simulator: linear work proportional to tokens, attention proportional to causal pairs,
// collectives and transfers at a fixed cost each (0 by default: free communication).
#pragma once

#include "runtime/plan/duration_model.hpp"

#include <cstdint>
#include <span>

namespace wlb::test {

struct fake_duration_model final : runtime::duration_model {
    int layers = 4;
    double linear_seconds_per_token = 1e-6;
    double attention_seconds_per_pair = 0.0;
    double bwd_ratio = 2.0;
    double output_seconds_per_token = 0.0;
    double collective_seconds_each = 0.0;
    double p2p_seconds_each = 0.0;
    double optimizer_seconds_each = 0.0;
    double layer_params = 0.0; ///< 0: no gradient reduction

    [[nodiscard]] runtime::plan_shape shape() const override {
        runtime::plan_shape s;
        s.layers = layers;
        s.pp_bytes_per_token = 2.0;
        s.tp_bytes_per_token = 2.0;
        s.kv_bytes_per_token = 1.0;
        s.layer_params = layer_params;
        return s;
    }
    [[nodiscard]] double linear_fwd_seconds(std::int64_t tokens) const override {
        return linear_seconds_per_token * static_cast<double>(tokens);
    }
    [[nodiscard]] double linear_bwd_seconds(std::int64_t tokens) const override {
        return bwd_ratio * linear_fwd_seconds(tokens);
    }
    [[nodiscard]] double attention_fwd_seconds(const runtime::cp_shard& shard) const override {
        double pairs = 0.0;
        for (const auto& c : shard.chunks)
            pairs += static_cast<double>(runtime::causal_pairs(c.q_tokens, c.q_offset));
        return attention_seconds_per_pair * pairs;
    }
    [[nodiscard]] double attention_bwd_seconds(const runtime::cp_shard& shard) const override {
        return bwd_ratio * attention_fwd_seconds(shard);
    }
    [[nodiscard]] double output_layer_fwd_seconds(std::int64_t tokens) const override {
        return output_seconds_per_token * static_cast<double>(tokens);
    }
    [[nodiscard]] double output_layer_bwd_seconds(std::int64_t tokens) const override {
        return bwd_ratio * output_layer_fwd_seconds(tokens);
    }
    [[nodiscard]] double collective_seconds(runtime::collective_kind, double,
                                            std::span<const int>) const override {
        return collective_seconds_each;
    }
    [[nodiscard]] double p2p_seconds(double, int, int) const override { return p2p_seconds_each; }
    [[nodiscard]] double optimizer_seconds(double) const override { return optimizer_seconds_each; }
};

/// A step of `dp` replicas with `micro_batches` micro-batches each; micro-batch m holds one
/// document of tokens(d, m) tokens, split evenly over `cp` ranks (contiguous chunks).
template <typename Tokens>
runtime::sharded_step make_step(int dp, int cp, int micro_batches, Tokens tokens) {
    runtime::sharded_step s;
    s.replicas.resize(static_cast<std::size_t>(dp));
    std::int64_t doc = 0;
    for (int d = 0; d < dp; ++d)
        for (int m = 0; m < micro_batches; ++m) {
            const std::int64_t n = tokens(d, m);
            runtime::sharded_micro_batch mb;
            mb.ranks.resize(static_cast<std::size_t>(cp));
            for (int c = 0; c < cp; ++c) {
                const std::int64_t begin = n * c / cp, end = n * (c + 1) / cp;
                mb.ranks[static_cast<std::size_t>(c)].chunks.push_back({doc, begin, end - begin});
            }
            ++doc;
            s.replicas[static_cast<std::size_t>(d)].push_back(std::move(mb));
        }
    return s;
}

} // namespace wlb::test
