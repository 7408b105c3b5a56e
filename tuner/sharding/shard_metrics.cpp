#include "tuner/sharding/shard_metrics.hpp"

#include "tuner/cost/cost_model.hpp"

#include <algorithm>

namespace wlb::tuner {

double chunk_attention_seconds(const cost_model& cost, std::int64_t q_tokens,
                               std::int64_t q_offset) {
    return cost.attention_fwd_seconds(q_tokens, q_offset) +
           cost.attention_bwd_seconds(q_tokens, q_offset);
}

double rank_linear_seconds(const cost_model& cost, std::int64_t tokens) {
    if (tokens <= 0)
        return 0.0;
    // TP collectives: the same again in backward (cost_model::tp_comm_fwd_seconds).
    return cost.linear_fwd_seconds(tokens) + cost.linear_bwd_seconds(tokens) +
           2.0 * cost.tp_comm_fwd_seconds(tokens);
}

shard_metrics measure_sharding(const runtime::sharded_micro_batch& s, const cost_model& cost) {
    shard_metrics m;
    m.ranks.resize(s.ranks.size());
    for (std::size_t r = 0; r < s.ranks.size(); ++r) {
        rank_load& load = m.ranks[r];
        load.cu_seqlens_q.push_back(0);
        load.cu_seqlens_k.push_back(0);
        for (const auto& c : s.ranks[r].chunks) {
            load.tokens += c.q_tokens;
            load.causal_pairs += runtime::causal_pairs(c.q_tokens, c.q_offset);
            load.attention_seconds += chunk_attention_seconds(cost, c.q_tokens, c.q_offset);
            load.cu_seqlens_q.push_back(load.cu_seqlens_q.back() + c.q_tokens);
            load.cu_seqlens_k.push_back(load.cu_seqlens_k.back() + c.kv_tokens());
        }
        load.linear_seconds = rank_linear_seconds(cost, load.tokens);
    }
    if (m.ranks.empty())
        return m;

    double attention_sum = 0.0;
    double token_sum = 0.0;
    m.min_tokens = m.max_tokens = m.ranks.front().tokens;
    m.min_pairs = m.max_pairs = m.ranks.front().causal_pairs;
    for (const auto& load : m.ranks) {
        m.predicted_seconds = std::max(m.predicted_seconds, load.predicted_seconds());
        m.max_attention_seconds = std::max(m.max_attention_seconds, load.attention_seconds);
        attention_sum += load.attention_seconds;
        token_sum += static_cast<double>(load.tokens);
        m.min_tokens = std::min(m.min_tokens, load.tokens);
        m.max_tokens = std::max(m.max_tokens, load.tokens);
        m.min_pairs = std::min(m.min_pairs, load.causal_pairs);
        m.max_pairs = std::max(m.max_pairs, load.causal_pairs);
    }
    const double n = static_cast<double>(m.ranks.size());
    if (attention_sum > 0.0)
        m.attention_imbalance = m.max_attention_seconds / (attention_sum / n);
    if (token_sum > 0.0)
        m.token_imbalance = static_cast<double>(m.max_tokens) / (token_sum / n);
    return m;
}

} // namespace wlb::tuner
