#include "tuner/sharding/make_sharder.hpp"

#include "base/error.hpp"
#include "tuner/sharding/shard_adaptive.hpp"
#include "tuner/sharding/shard_hybrid.hpp"
#include "tuner/sharding/shard_per_doc.hpp"
#include "tuner/sharding/shard_per_seq.hpp"

namespace wlb::tuner {

std::unique_ptr<sharder> make_sharder(const sharding_spec& spec, const cost_model& cost) {
    const int cp = cost.layout().cp();
    switch (spec.policy) {
    case sharding_policy::per_seq:
        return std::make_unique<per_seq_sharder>(cp);
    case sharding_policy::per_doc:
        return std::make_unique<per_doc_sharder>(cp);
    case sharding_policy::adaptive:
        return std::make_unique<adaptive_sharder>(cost);
    case sharding_policy::hybrid:
        return std::make_unique<hybrid_sharder>(cost, spec.hybrid_threshold_tokens,
                                                spec.hybrid_max_token_imbalance);
    }
    throw internal_error("unknown sharding policy");
}

} // namespace wlb::tuner
