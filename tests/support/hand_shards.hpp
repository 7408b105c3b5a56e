// Hand-built batches and CP chunk lists for the decoder tests (unit and MPI): the sharding
// policies themselves belong to tuner/ (issue [sharding]); these are the textbook shapes, written
// out so the tests do not depend on them.
#pragma once

#include "runtime/comm/fake_communicator.hpp"
#include "runtime/parallel/batch.hpp"
#include "runtime/train/decoder.hpp"
#include "runtime/train/decoder_step.hpp"

#include <algorithm>
#include <vector>

namespace wlb::test {

using namespace wlb::runtime;

// Four micro-batches of documents of mixed lengths (one of a single token: no label).
inline std::vector<micro_batch> test_micro_batches() {
    const std::vector<std::vector<std::int64_t>> lengths = {
        {13, 2, 7}, {21}, {1, 9, 5, 4}, {3, 16}};
    std::vector<micro_batch> out;
    std::int64_t id = 100;
    for (const auto& mb : lengths) {
        micro_batch m;
        for (auto n : mb)
            m.docs.push_back({id++, n, 0});
        out.push_back(m);
    }
    return out;
}

inline global_batch split_over_replicas(const std::vector<micro_batch>& mbs, int dp) {
    global_batch b;
    b.replicas.resize(static_cast<std::size_t>(dp));
    const std::size_t per = mbs.size() / static_cast<std::size_t>(dp);
    for (std::size_t m = 0; m < mbs.size(); ++m)
        b.replicas[m / per].micro_batches.push_back(mbs[m]);
    return b;
}

// Half-open piece p of [0, n) cut into k near-equal pieces.
inline std::pair<std::int64_t, std::int64_t> piece(std::int64_t n, int k, int p) {
    return {n * p / k, n * (p + 1) / k};
}

// Per-document sharding (WLB-LLM): every document cut into 2*cp pieces; CP rank i takes pieces
// i and 2*cp-1-i of each document.
inline sharded_micro_batch per_doc(const micro_batch& mb, int cp) {
    sharded_micro_batch s;
    s.ranks.resize(static_cast<std::size_t>(cp));
    for (int r = 0; r < cp; ++r)
        for (const auto& d : mb.docs)
            for (int p : {r, 2 * cp - 1 - r}) {
                auto [b, e] = piece(d.tokens, 2 * cp, p);
                if (e > b)
                    s.ranks[static_cast<std::size_t>(r)].chunks.push_back({d.id, b, e - b});
            }
    return s;
}

// Per-sequence sharding (Llama 3): the packed sequence cut into 2*cp pieces; CP rank i takes
// pieces i and 2*cp-1-i, each becoming the chunks of the documents it crosses.
inline sharded_micro_batch per_seq(const micro_batch& mb, int cp) {
    sharded_micro_batch s;
    s.ranks.resize(static_cast<std::size_t>(cp));
    for (int r = 0; r < cp; ++r)
        for (int p : {r, 2 * cp - 1 - r}) {
            auto [b, e] = piece(mb.tokens(), 2 * cp, p);
            std::int64_t start = 0;
            for (const auto& d : mb.docs) {
                const std::int64_t lo = std::max(b, start), hi = std::min(e, start + d.tokens);
                if (hi > lo)
                    s.ranks[static_cast<std::size_t>(r)].chunks.push_back(
                        {d.id, lo - start, hi - lo});
                start += d.tokens;
            }
        }
    return s;
}

enum class policy { per_seq, per_doc };

inline batch_shards shard_batch(const global_batch& b, int cp, policy pol) {
    batch_shards out;
    for (const auto& r : b.replicas) {
        out.emplace_back();
        for (const auto& mb : r.micro_batches)
            out.back().push_back(pol == policy::per_doc ? per_doc(mb, cp) : per_seq(mb, cp));
    }
    return out;
}

inline const decoder_config& test_config() {
    static const decoder_config c = [] {
        decoder_config d;
        d.vocab = 24;
        d.hidden = 16;
        d.heads = 4;
        d.ffn = 24;
        d.layers = 2;
        return d;
    }();
    return c;
}

/// 1F1B order of one pipeline stage over m micro-batches (warm-up forwards, then one forward and
/// one backward alternately, then the remaining backwards), written out for the tests; the
/// schedules themselves belong to the [simulator] issue.
inline std::vector<stage_op> one_f_one_b(int pp, int stage, int m) {
    std::vector<stage_op> ops;
    int f = 0, b = 0;
    for (int i = 0; i < std::min(pp - stage - 1, m); ++i)
        ops.push_back({stage_op::kind::forward, f++});
    while (f < m) {
        ops.push_back({stage_op::kind::forward, f++});
        ops.push_back({stage_op::kind::backward, b++});
    }
    while (b < m)
        ops.push_back({stage_op::kind::backward, b++});
    return ops;
}

/// The reference: the whole global batch (every replica's micro-batches) on one rank, whole
/// documents, no parallelism.
template <typename T>
step_gradients<T> single_rank(const decoder_params<T>& full,
                              const decoder_config& config = test_config()) {
    const auto b = split_over_replicas(test_micro_batches(), 1);
    batch_shards shards(1);
    for (const auto& mb : b.replicas[0].micro_batches)
        shards[0].push_back(whole_documents(mb));
    fake_world world(1);
    auto c = world.communicator_for(0);
    return compute_step_gradients<T>(config, full, b, shards, {*c, *c, *c});
}

} // namespace wlb::test
