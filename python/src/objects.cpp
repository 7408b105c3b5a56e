#include "python/src/objects.hpp"

#include "base/error.hpp"

#include <fmt/format.h>

namespace wlb::python {

std::shared_ptr<packed_step> packed_step::from(const runtime::global_batch& b) {
    auto s = std::make_shared<packed_step>();
    s->step = b.step;
    s->replicas = static_cast<int>(b.replicas.size());
    s->micro_batches =
        b.replicas.empty() ? 0 : static_cast<int>(b.replicas[0].micro_batches.size());
    std::size_t docs = 0;
    for (const auto& r : b.replicas) {
        if (static_cast<int>(r.micro_batches.size()) != s->micro_batches)
            throw input_error(fmt::format("step {}: replicas hold {} and {} micro-batches", b.step,
                                          s->micro_batches, r.micro_batches.size()));
        for (const auto& mb : r.micro_batches)
            docs += mb.docs.size();
    }
    s->ids.reserve(docs);
    s->tokens.reserve(docs);
    s->drawn_steps.reserve(docs);
    s->offsets.reserve(static_cast<std::size_t>(s->replicas * s->micro_batches) + 1);
    s->offsets.push_back(0);
    for (const auto& r : b.replicas)
        for (const auto& mb : r.micro_batches) {
            for (const auto& d : mb.docs) {
                s->ids.push_back(d.id);
                s->tokens.push_back(d.tokens);
                s->drawn_steps.push_back(d.drawn_step);
            }
            s->offsets.push_back(static_cast<std::int64_t>(s->ids.size()));
        }
    return s;
}

runtime::micro_batch packed_step::micro_batch(std::size_t k) const {
    runtime::micro_batch mb;
    const auto begin = static_cast<std::size_t>(offsets[k]);
    const auto end = static_cast<std::size_t>(offsets[k + 1]);
    mb.docs.reserve(end - begin);
    for (std::size_t i = begin; i < end; ++i)
        mb.docs.push_back({ids[i], tokens[i], drawn_steps[i]});
    return mb;
}

runtime::global_batch packed_step::batch() const {
    runtime::global_batch b;
    b.step = step;
    b.replicas.resize(static_cast<std::size_t>(replicas));
    for (std::size_t k = 0; k < micro_batch_count(); ++k)
        b.replicas[k / static_cast<std::size_t>(micro_batches)].micro_batches.push_back(
            micro_batch(k));
    return b;
}

std::shared_ptr<cp_sharding> cp_sharding::from(tuner::shard_decision d) {
    auto s = std::make_shared<cp_sharding>();
    s->decision = std::move(d);
    s->shapes.reserve(s->decision.sharded.ranks.size());
    for (const auto& rank : s->decision.sharded.ranks)
        s->shapes.push_back(tuner::make_varlen_shapes(rank));
    return s;
}

} // namespace wlb::python
