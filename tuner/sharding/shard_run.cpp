#include "tuner/sharding/shard_run.hpp"

#include "base/error.hpp"

#include <algorithm>

namespace wlb::tuner {

void shard_run_accumulator::add(const shard_record& r) {
    const auto& m = r.metrics;
    m_sum.micro_batches += 1;
    m_sum.tokens += r.tokens;
    if (m.attention_imbalance > m_sum.worst_attention_imbalance) {
        m_sum.worst_attention_imbalance = m.attention_imbalance;
        m_sum.worst_step = r.step;
        m_sum.worst_replica = r.replica;
        m_sum.worst_micro_batch = r.micro_batch;
    }
    m_sum.worst_token_imbalance = std::max(m_sum.worst_token_imbalance, m.token_imbalance);
    m_sum.predicted_seconds += m.predicted_seconds;
    m_sum.applied[static_cast<std::size_t>(r.decision.applied)] += 1;
    m_sum.fell_back += r.decision.fell_back ? 1 : 0;
    m_attention_imbalance_sum += m.attention_imbalance;
    m_token_imbalance_sum += m.token_imbalance;
    m_max_attention_sum += m.max_attention_seconds;
    if (m.attention_imbalance > 0.0)
        m_mean_attention_sum += m.max_attention_seconds / m.attention_imbalance;
}

shard_run_summary shard_run_accumulator::summary() const {
    shard_run_summary s = m_sum;
    if (s.micro_batches > 0) {
        const double n = static_cast<double>(s.micro_batches);
        s.mean_attention_imbalance = m_attention_imbalance_sum / n;
        s.mean_token_imbalance = m_token_imbalance_sum / n;
    }
    if (m_mean_attention_sum > 0.0)
        s.weighted_attention_imbalance = m_max_attention_sum / m_mean_attention_sum;
    return s;
}

shard_record make_shard_record(std::int64_t step, int replica, int micro_batch,
                               const runtime::micro_batch& mb, shard_decision decision,
                               const cost_model& cost) {
    shard_record r;
    r.step = step;
    r.replica = replica;
    r.micro_batch = micro_batch;
    r.documents = static_cast<std::int64_t>(mb.docs.size());
    r.tokens = mb.tokens();
    r.decision = std::move(decision);
    r.metrics = measure_sharding(r.decision.sharded, cost);
    return r;
}

step_sharding shard_step(const runtime::global_batch& batch, const sharder& s,
                         const cost_model& cost, shard_run_accumulator& acc,
                         const shard_record_sink& sink) {
    step_sharding out(batch.replicas.size());
    for (std::size_t rep = 0; rep < batch.replicas.size(); ++rep) {
        const auto& mbs = batch.replicas[rep].micro_batches;
        out[rep].reserve(mbs.size());
        for (std::size_t i = 0; i < mbs.size(); ++i) {
            auto r = make_shard_record(batch.step, static_cast<int>(rep), static_cast<int>(i),
                                       mbs[i], s.shard(mbs[i]), cost);
            acc.add(r);
            if (sink)
                sink(r);
            out[rep].push_back(std::move(r.decision));
        }
    }
    return out;
}

void measure_step(const runtime::global_batch& batch, const step_sharding& decisions,
                  const cost_model& cost, shard_run_accumulator& acc,
                  const shard_record_sink& sink) {
    WLB_EXPECTS(decisions.size() == batch.replicas.size(),
                "measure_step: {} replicas of decisions for {} replicas", decisions.size(),
                batch.replicas.size());
    for (std::size_t rep = 0; rep < batch.replicas.size(); ++rep) {
        const auto& mbs = batch.replicas[rep].micro_batches;
        WLB_EXPECTS(decisions[rep].size() == mbs.size(),
                    "measure_step: {} decisions for {} micro-batches", decisions[rep].size(),
                    mbs.size());
        for (std::size_t i = 0; i < mbs.size(); ++i) {
            auto r = make_shard_record(batch.step, static_cast<int>(rep), static_cast<int>(i),
                                       mbs[i], decisions[rep][i], cost);
            acc.add(r);
            if (sink)
                sink(r);
        }
    }
}

} // namespace wlb::tuner
