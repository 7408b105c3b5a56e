#include "tuner/sharding/shard_adaptive.hpp"

#include "tuner/cost/cost_model.hpp"
#include "tuner/sharding/shard_metrics.hpp"
#include "tuner/sharding/shard_per_doc.hpp"
#include "tuner/sharding/shard_per_seq.hpp"

namespace wlb::tuner {

shard_decision adaptive_sharder::shard(const runtime::micro_batch& mb) const {
    const int cp = m_cost.layout().cp();
    auto per_seq = shard_per_seq(mb, cp);
    auto per_doc = shard_per_doc(mb, cp);
    const double seq_seconds = measure_sharding(per_seq, m_cost).predicted_seconds;
    const double doc_seconds = measure_sharding(per_doc, m_cost).predicted_seconds;
    if (doc_seconds < seq_seconds)
        return {std::move(per_doc), sharding_policy::per_doc, {}, false};
    return {std::move(per_seq), sharding_policy::per_seq, {}, false};
}

} // namespace wlb::tuner
