// Varlen kernel shapes of a CP rank (tuner/sharding/varlen_shapes.hpp): each chunk's query and
// key lengths are the differences of cu_seqlens_q and cu_seqlens_k, its key offset is its
// q_offset, and the whole agrees with the int64 shapes shard_metrics reports (what `wlbtune shard
// --shapes` writes), for every policy on random micro-batches; a rank too large for int32 is an
// input error.
#include "base/error.hpp"
#include "tuner/cost/cost_model.hpp"
#include "tuner/sharding/make_sharder.hpp"
#include "tuner/sharding/shard_metrics.hpp"
#include "tuner/sharding/varlen_shapes.hpp"

#include <algorithm>
#include <gtest/gtest.h>
#include <random>

using namespace wlb;

namespace {

TEST(VarlenShapes, ChunksAndMetricsAgreeForEveryPolicy) {
    const tuner::cost_model cost(runtime::model_preset("7b"), tuner::hardware_preset("h100-sxm"),
                                 runtime::layout::parse("tp=8,cp=4,pp=4,dp=1"));
    std::mt19937_64 rng(11);
    for (const auto policy : {tuner::sharding_policy::per_seq, tuner::sharding_policy::per_doc,
                              tuner::sharding_policy::adaptive, tuner::sharding_policy::hybrid}) {
        tuner::sharding_spec spec;
        spec.policy = policy;
        const auto sharder = tuner::make_sharder(spec, cost);
        for (int trial = 0; trial < 30; ++trial) {
            runtime::micro_batch mb;
            const auto n = 1 + rng() % 30;
            for (std::uint64_t i = 0; i < n; ++i)
                mb.docs.push_back(
                    {static_cast<std::int64_t>(i),
                     static_cast<std::int64_t>(1 + rng() % (rng() % 4 ? 3000 : 60000)), 0});
            const auto d = sharder->shard(mb);
            const auto m = tuner::measure_sharding(d.sharded, cost);
            ASSERT_EQ(d.sharded.ranks.size(), 4u);
            for (std::size_t r = 0; r < 4; ++r) {
                const auto& chunks = d.sharded.ranks[r].chunks;
                const auto s = tuner::make_varlen_shapes(d.sharded.ranks[r]);
                ASSERT_EQ(s.cu_seqlens_q.size(), chunks.size() + 1);
                ASSERT_EQ(s.cu_seqlens_k.size(), chunks.size() + 1);
                ASSERT_EQ(s.q_offsets.size(), chunks.size());
                EXPECT_EQ(s.cu_seqlens_q[0], 0);
                EXPECT_EQ(s.cu_seqlens_k[0], 0);
                std::int64_t max_q = 0;
                std::int64_t max_k = 0;
                for (std::size_t c = 0; c < chunks.size(); ++c) {
                    EXPECT_EQ(s.cu_seqlens_q[c + 1] - s.cu_seqlens_q[c], chunks[c].q_tokens);
                    EXPECT_EQ(s.cu_seqlens_k[c + 1] - s.cu_seqlens_k[c],
                              chunks[c].q_offset + chunks[c].q_tokens);
                    EXPECT_EQ(s.q_offsets[c], chunks[c].q_offset);
                    max_q = std::max(max_q, chunks[c].q_tokens);
                    max_k = std::max(max_k, chunks[c].kv_tokens());
                }
                EXPECT_EQ(s.max_seqlen_q, max_q);
                EXPECT_EQ(s.max_seqlen_k, max_k);
                EXPECT_EQ(std::vector<std::int64_t>(s.cu_seqlens_q.begin(), s.cu_seqlens_q.end()),
                          m.ranks[r].cu_seqlens_q);
                EXPECT_EQ(std::vector<std::int64_t>(s.cu_seqlens_k.begin(), s.cu_seqlens_k.end()),
                          m.ranks[r].cu_seqlens_k);
                EXPECT_EQ(s.cu_seqlens_q.back(), m.ranks[r].tokens);
            }
        }
    }
}

TEST(VarlenShapes, ARankBeyondInt32IsAnInputError) {
    runtime::cp_shard s;
    s.chunks.push_back({0, 0, 1'500'000'000});
    s.chunks.push_back({1, 0, 1'000'000'000});
    EXPECT_THROW((void)tuner::make_varlen_shapes(s), input_error);
    runtime::cp_shard keys; // few queries, but their keys overflow
    keys.chunks.push_back({0, 2'000'000'000, 10});
    keys.chunks.push_back({1, 2'000'000'000, 10});
    EXPECT_THROW((void)tuner::make_varlen_shapes(keys), input_error);
    EXPECT_EQ(tuner::make_varlen_shapes({}).cu_seqlens_q, std::vector<std::int32_t>{0});
}

} // namespace
