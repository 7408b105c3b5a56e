// The decoder step with TP, CP and DP over the fake communicator: the loss and every parameter
// gradient equal a single-rank run on the same global batch (1e-5 relative in double; the
// observed error is rounding), for per-sequence and per-document CP chunk lists built by hand.
#include "base/error.hpp"
#include "runtime/comm/fake_communicator.hpp"
#include "runtime/parallel/layout.hpp"
#include "runtime/train/decoder.hpp"
#include "runtime/train/decoder_step.hpp"
#include "support/hand_shards.hpp"

#include <cmath>
#include <gtest/gtest.h>
#include <map>
#include <mutex>
#include <tuple>

using namespace wlb::runtime;
using namespace wlb::test;

namespace {

enum class pipeline_order { gpipe, one_f_one_b, depth_first };

// Each micro-batch through all virtual stages and straight back, one after the other.
std::vector<stage_op> depth_first(int micro_batches, int vpp) {
    std::vector<stage_op> ops;
    for (int m = 0; m < micro_batches; ++m) {
        for (int v = 0; v < vpp; ++v)
            ops.push_back({stage_op::kind::forward, m, v});
        for (int v = vpp; v-- > 0;)
            ops.push_back({stage_op::kind::backward, m, v});
    }
    return ops;
}

const decoder_config& four_layer_config() {
    static const decoder_config c = [] {
        decoder_config d = test_config();
        d.layers = 4;
        return d;
    }();
    return c;
}

// Every rank's result, indexed by world rank.
template <typename T>
std::vector<step_gradients<T>> parallel_run(const decoder_params<T>& full, const layout& l,
                                            policy pol,
                                            pipeline_order order = pipeline_order::gpipe,
                                            const decoder_config& config = test_config()) {
    const auto b = split_over_replicas(test_micro_batches(), l.dp());
    const auto shards = shard_batch(b, l.cp(), pol);
    std::vector<step_gradients<T>> results(static_cast<std::size_t>(l.world_size()));
    fake_world::run(l.world_size(), 30.0, [&](communicator& world) {
        auto g = make_group_communicators(world, l);
        const int stage = g.pp->rank();
        const auto local = stage_decoder_params(
            shard_decoder_params(config, full, l.tp(), g.tp->rank()), l.pp(), stage, l.vpp());
        const int micro_batches = static_cast<int>(
            b.replicas[static_cast<std::size_t>(g.dp->rank())].micro_batches.size());
        std::vector<stage_op> ops;
        if (order == pipeline_order::one_f_one_b)
            ops = one_f_one_b(l.pp(), stage, micro_batches);
        else if (order == pipeline_order::depth_first)
            ops = depth_first(micro_batches, l.vpp());
        results[static_cast<std::size_t>(world.rank())] = compute_step_gradients<T>(
            config, local, b, shards, {*g.tp, *g.cp, *g.dp, g.pp.get(), l.vpp()}, ops);
    });
    return results;
}

// The part of full-model gradients that world rank r of l holds.
template <typename T>
decoder_params<T> part_of(const decoder_params<T>& full, const layout& l, int r,
                          const decoder_config& config = test_config()) {
    const coords c = l.coords_of(r);
    return stage_decoder_params(shard_decoder_params(config, full, l.tp(), c.tp), l.pp(), c.pp,
                                l.vpp());
}

template <typename T>
void expect_equal_params(const decoder_params<T>& got, const decoder_params<T>& want, double rel,
                         const std::string& where, double floor = 1e-11) {
    std::vector<std::pair<std::string, const std::vector<T>*>> w;
    want.for_each([&](const std::string& n, const std::vector<T>& t) { w.emplace_back(n, &t); });
    std::size_t i = 0;
    got.for_each([&](const std::string& name, const std::vector<T>& t) {
        const auto& ref = *w[i++].second;
        ASSERT_EQ(t.size(), ref.size()) << where << " " << name;
        if (ref.empty())
            return; // a tensor this pipeline stage does not hold
        double scale = 0;
        for (auto v : ref)
            scale = std::max(scale, std::abs(static_cast<double>(v)));
        ASSERT_GT(scale, 0.0) << where << " " << name << ": an all-zero gradient tests nothing";
        for (std::size_t j = 0; j < t.size(); ++j)
            ASSERT_NEAR(static_cast<double>(t[j]), static_cast<double>(ref[j]),
                        rel * std::abs(static_cast<double>(ref[j])) + floor * scale)
                << where << " " << name << "[" << j << "]";
    });
}

struct layout_case {
    int tp, cp, pp, dp;
};

class DecoderParallel : public ::testing::TestWithParam<std::tuple<layout_case, policy>> {};

TEST_P(DecoderParallel, LossAndEveryGradientEqualTheSingleRankRunInDouble) {
    const auto [lc, pol] = GetParam();
    const layout l(lc.tp, lc.cp, lc.pp, lc.dp);
    const auto full = init_decoder_params<double>(test_config(), 7);
    const auto ref = single_rank(full);
    const auto results = parallel_run(full, l, pol);
    for (int r = 0; r < l.world_size(); ++r) {
        const auto& got = results[static_cast<std::size_t>(r)];
        const std::string where = fmt::format("{} rank {}", l.spec(), r);
        EXPECT_NEAR(got.loss, ref.loss, 1e-5 * ref.loss) << where;
        EXPECT_EQ(got.labelled_tokens, ref.labelled_tokens);
        expect_equal_params(got.grads, part_of(ref.grads, l, r), 1e-5, where);
    }
}

std::string case_name(const ::testing::TestParamInfo<std::tuple<layout_case, policy>>& info) {
    const auto& [lc, pol] = info.param;
    return fmt::format("tp{}_cp{}_pp{}_dp{}_{}", lc.tp, lc.cp, lc.pp, lc.dp,
                       pol == policy::per_doc ? "per_doc" : "per_seq");
}

INSTANTIATE_TEST_SUITE_P(
    Layouts, DecoderParallel,
    ::testing::Combine(
        ::testing::Values(layout_case{1, 1, 1, 1}, layout_case{2, 1, 1, 1}, layout_case{1, 2, 1, 1},
                          layout_case{1, 1, 1, 2}, layout_case{2, 2, 1, 1}, layout_case{2, 1, 1, 2},
                          layout_case{1, 2, 1, 2}, layout_case{2, 2, 1, 2}, layout_case{1, 4, 1, 1},
                          layout_case{2, 4, 1, 1}, layout_case{1, 4, 1, 2}, layout_case{1, 1, 2, 1},
                          layout_case{2, 1, 2, 1}, layout_case{1, 2, 2, 1}, layout_case{1, 1, 2, 2},
                          layout_case{2, 2, 2, 1}, layout_case{2, 1, 2, 2}, layout_case{1, 2, 2, 2},
                          layout_case{1, 4, 2, 1}),
        ::testing::Values(policy::per_seq, policy::per_doc)),
    case_name);

template <typename To, typename From>
std::vector<To> cast(const std::vector<From>& v) {
    return {v.begin(), v.end()};
}

template <typename To, typename From>
decoder_params<To> cast(const decoder_params<From>& p) {
    decoder_params<To> out;
    out.embed = cast<To>(p.embed);
    for (const auto& l : p.layers)
        out.layers.push_back({cast<To>(l.norm1), cast<To>(l.wqkv), cast<To>(l.wo),
                              cast<To>(l.norm2), cast<To>(l.w_gate), cast<To>(l.w_up),
                              cast<To>(l.w_down)});
    out.final_norm = cast<To>(p.final_norm);
    out.lm_head = cast<To>(p.lm_head);
    return out;
}

TEST(DecoderParallelFloat, MatchesTheDoubleSingleRankRunToFloatPrecision) {
    const auto full = init_decoder_params<double>(test_config(), 7);
    const auto ref = single_rank(full);
    const auto full_f = cast<float>(full);
    const layout l(2, 2, 1, 2);
    const auto results = parallel_run(full_f, l, policy::per_doc);
    const auto ref_f = cast<float>(ref.grads);
    // Stated float32 tolerance: 1e-3 relative to the element plus 1e-5 of the tensor's largest
    // gradient (float rounding through 2 layers of a few hundred operations per value; elements
    // near zero are sums that cancel, so their error is relative to the tensor's scale).
    for (int r = 0; r < l.world_size(); ++r) {
        EXPECT_NEAR(results[static_cast<std::size_t>(r)].loss, ref.loss, 1e-5 * ref.loss);
        expect_equal_params(results[static_cast<std::size_t>(r)].grads, part_of(ref_f, l, r), 1e-3,
                            fmt::format("float rank {}", r), 1e-5);
    }
}

TEST(DecoderPipeline, OneFOneBOrderEqualsTheSingleRankRun) {
    const auto full = init_decoder_params<double>(test_config(), 7);
    const auto ref = single_rank(full);
    for (const layout& l : {layout(1, 1, 2, 1), layout(2, 2, 2, 1), layout(1, 2, 2, 2)}) {
        const auto results = parallel_run(full, l, policy::per_doc, pipeline_order::one_f_one_b);
        for (int r = 0; r < l.world_size(); ++r) {
            const auto& got = results[static_cast<std::size_t>(r)];
            EXPECT_NEAR(got.loss, ref.loss, 1e-5 * ref.loss) << l.spec();
            expect_equal_params(got.grads, part_of(ref.grads, l, r), 1e-5,
                                fmt::format("1F1B {} rank {}", l.spec(), r));
        }
    }
}

TEST(DecoderPipeline, InterleavedVirtualStagesEqualTheSingleRankRun) {
    const auto& config = four_layer_config();
    const auto full = init_decoder_params<double>(config, 5);
    const auto ref = single_rank(full, config);
    for (const layout& l : {layout(1, 1, 2, 1, 2), layout(2, 2, 2, 1, 2), layout(1, 2, 2, 2, 2)})
        for (auto order : {pipeline_order::gpipe, pipeline_order::depth_first}) {
            const auto results = parallel_run(full, l, policy::per_seq, order, config);
            for (int r = 0; r < l.world_size(); ++r) {
                const auto& got = results[static_cast<std::size_t>(r)];
                const std::string where =
                    fmt::format("{} {} rank {}", l.spec(),
                                order == pipeline_order::gpipe ? "all-forward" : "depth-first", r);
                EXPECT_NEAR(got.loss, ref.loss, 1e-5 * ref.loss) << where;
                expect_equal_params(got.grads, part_of(ref.grads, l, r, config), 1e-5, where);
            }
        }
}

TEST(DecoderPipeline, VirtualStagesNeedAPipeline) {
    const auto full = init_decoder_params<double>(four_layer_config(), 5);
    const auto b = split_over_replicas(test_micro_batches(), 1);
    batch_shards shards(1);
    for (const auto& mb : b.replicas[0].micro_batches)
        shards[0].push_back(whole_documents(mb));
    fake_world world(1);
    auto c = world.communicator_for(0);
    EXPECT_THROW((void)compute_step_gradients<double>(four_layer_config(), full, b, shards,
                                                      {*c, *c, *c, nullptr, 2}),
                 wlb::input_error);
}

TEST(DecoderPipeline, OrdersThatSkipOrRepeatAMicroBatchAreRefused) {
    const auto full = init_decoder_params<double>(test_config(), 7);
    const auto b = split_over_replicas(test_micro_batches(), 1);
    batch_shards shards(1);
    for (const auto& mb : b.replicas[0].micro_batches)
        shards[0].push_back(whole_documents(mb));
    fake_world world(1);
    auto c = world.communicator_for(0);
    using k = stage_op::kind;
    const std::vector<std::vector<stage_op>> bad = {
        {{k::backward, 0}},                  // before forward
        {{k::forward, 0}, {k::forward, 0}},  // twice
        {{k::forward, 0}, {k::backward, 0}}, // 1..3 missing
        {{k::forward, 9}},                   // out of range
    };
    for (const auto& order : bad)
        EXPECT_THROW((void)compute_step_gradients<double>(test_config(), full, b, shards,
                                                          {*c, *c, *c}, order),
                     wlb::input_error);
}

TEST(DecoderParams, StagesPartitionTheLayers) {
    const auto full = init_decoder_params<double>(test_config(), 3);
    const auto s0 = stage_decoder_params(full, 2, 0);
    const auto s1 = stage_decoder_params(full, 2, 1);
    EXPECT_EQ(s0.layers.size() + s1.layers.size(), full.layers.size());
    EXPECT_EQ(s0.embed, full.embed);
    EXPECT_TRUE(s1.embed.empty());
    EXPECT_TRUE(s0.lm_head.empty());
    EXPECT_EQ(s1.lm_head, full.lm_head);
    EXPECT_EQ(s1.layers[0].wqkv, full.layers[1].wqkv);
    EXPECT_THROW((void)stage_decoder_params(full, 3, 0), wlb::input_error);
    // Interleaved: 4 layers in 2 x 2 chunks; stage 0 holds chunks 0 and 2 (layers 0 and 2).
    const auto deep = init_decoder_params<double>(four_layer_config(), 3);
    const auto v0 = stage_decoder_params(deep, 2, 0, 2);
    ASSERT_EQ(v0.layers.size(), 2u);
    EXPECT_EQ(v0.layers[0].wo, deep.layers[0].wo);
    EXPECT_EQ(v0.layers[1].wo, deep.layers[2].wo);
    EXPECT_THROW((void)stage_decoder_params(deep, 2, 0, 3), wlb::input_error);
}

// Collects one rank's operations.
struct recording_observer final : step_observer {
    std::vector<op_record> ops;
    void record(const op_record& op) override { ops.push_back(op); }
};

TEST(DecoderCapture, EveryOperationIsReportedInOrderWithItsMicroBatchLayerAndBytes) {
    const layout l(2, 2, 2, 1);
    const auto full = init_decoder_params<double>(test_config(), 7);
    const auto b = split_over_replicas(test_micro_batches(), 1);
    const auto shards = shard_batch(b, l.cp(), policy::per_doc);
    const int micro_batches = static_cast<int>(b.replicas[0].micro_batches.size());
    std::vector<recording_observer> observers(static_cast<std::size_t>(l.world_size()));
    fake_world::run(l.world_size(), 30.0, [&](communicator& world) {
        auto g = make_group_communicators(world, l);
        const auto local = stage_decoder_params(
            shard_decoder_params(test_config(), full, l.tp(), g.tp->rank()), l.pp(), g.pp->rank());
        parallel_groups groups{*g.tp, *g.cp, *g.dp, g.pp.get()};
        groups.observer = &observers[static_cast<std::size_t>(world.rank())];
        (void)compute_step_gradients<double>(test_config(), local, b, shards, groups,
                                             one_f_one_b(l.pp(), g.pp->rank(), micro_batches));
    });
    const std::int64_t hl = test_config().hidden / l.tp();
    for (int r = 0; r < l.world_size(); ++r) {
        const auto& ops = observers[static_cast<std::size_t>(r)].ops;
        const coords c = l.coords_of(r);
        ASSERT_FALSE(ops.empty());
        // Program order on one thread: no two operations overlap.
        for (std::size_t i = 1; i < ops.size(); ++i) {
            ASSERT_GE(ops[i - 1].dur_ns, 0);
            ASSERT_LE(ops[i - 1].start_ns + ops[i - 1].dur_ns, ops[i].start_ns) << ops[i].name;
        }
        // One forward and one backward attention per micro-batch and layer of this stage (the
        // stage holds layer c.pp of the two).
        std::map<std::tuple<int, int, int>, int> attention; // (phase, m, layer) -> count
        int sends = 0, recvs = 0, grad_reductions = 0;
        for (const auto& op : ops) {
            if (op.name == "attention fwd" || op.name == "attention bwd") {
                ASSERT_EQ(op.layer, c.pp);
                ++attention[{static_cast<int>(op.phase), op.micro_batch, op.layer}];
            }
            if (op.name == "cp all-gather kv") {
                // Every CP rank contributes the longest CP rank's rows of K and V.
                const auto& mb_shard = shards[0][static_cast<std::size_t>(op.micro_batch)];
                std::int64_t max_rows = 0;
                for (const auto& rank : mb_shard.ranks) {
                    std::int64_t rows = 0;
                    for (const auto& ch : rank.chunks)
                        rows += ch.q_tokens;
                    max_rows = std::max(max_rows, rows);
                }
                ASSERT_EQ(op.bytes, max_rows * 2 * hl * 8);
                ASSERT_EQ(op.lane, op_lane::cp);
                ASSERT_EQ(op.type, op_type::collective);
            }
            if (op.type == op_type::send || op.type == op_type::recv) {
                // A stage's messages go to and come from its one neighbour (pp = 2).
                ASSERT_EQ(op.lane, op_lane::pp);
                ASSERT_EQ(op.peer_world_rank, l.rank_of({c.tp, c.cp, 1 - c.pp, c.dp}));
                ASSERT_GE(op.message, 0);
            }
            sends += op.type == op_type::send;
            recvs += op.type == op_type::recv;
            grad_reductions += op.name == "grad all-reduce";
        }
        ASSERT_EQ(static_cast<int>(attention.size()), 2 * micro_batches);
        for (const auto& [key, count] : attention)
            ASSERT_EQ(count, 1);
        // Each stage sends one message per micro-batch (activations or gradients) and receives
        // one; the gradients are reduced over CP once (dp=1: no DP reduction).
        EXPECT_EQ(sends, micro_batches) << "rank " << r;
        EXPECT_EQ(recvs, micro_batches) << "rank " << r;
        EXPECT_EQ(grad_reductions, 1) << "rank " << r;
    }
}

TEST(DecoderParams, UnshardInvertsShard) {
    const auto full = init_decoder_params<double>(test_config(), 3);
    for (int tp : {1, 2, 4}) {
        std::vector<decoder_params<double>> shards;
        for (int t = 0; t < tp; ++t)
            shards.push_back(shard_decoder_params(test_config(), full, tp, t));
        expect_equal_params(unshard_decoder_params(test_config(), shards), full, 0.0,
                            fmt::format("tp={}", tp), 0.0);
    }
}

TEST(DecoderStep, SgdStepAfterTheReductionLowersTheLoss) {
    auto params = init_decoder_params<double>(test_config(), 11);
    const auto before = single_rank(params);
    apply_sgd(params, before.grads, 0.05);
    const auto after = single_rank(params);
    EXPECT_LT(after.loss, before.loss);
    // First order: the decrease is about lr * |g|^2.
    double g2 = 0;
    before.grads.for_each([&](const std::string&, const std::vector<double>& t) {
        for (double v : t)
            g2 += v * v;
    });
    EXPECT_NEAR(before.loss - after.loss, 0.05 * g2, 0.25 * 0.05 * g2);
}

TEST(DecoderStep, ChunksThatDoNotTileTheirDocumentAreRefused) {
    micro_batch mb;
    mb.docs = {{1, 10, 0}, {2, 4, 0}};
    sharded_micro_batch s;
    s.ranks.resize(2);
    s.ranks[0].chunks = {{1, 0, 6}, {2, 0, 4}};
    s.ranks[1].chunks = {{1, 5, 5}}; // overlaps token 5
    EXPECT_THROW(validate_shard(mb, s, 2, "mb"), wlb::input_error);
    s.ranks[1].chunks = {{1, 6, 3}}; // leaves token 9
    EXPECT_THROW(validate_shard(mb, s, 2, "mb"), wlb::input_error);
    s.ranks[1].chunks = {{1, 6, 4}, {3, 0, 1}}; // document 3 is not in the micro-batch
    EXPECT_THROW(validate_shard(mb, s, 2, "mb"), wlb::input_error);
    s.ranks[1].chunks = {{1, 6, 4}};
    EXPECT_NO_THROW(validate_shard(mb, s, 2, "mb"));
    EXPECT_THROW(validate_shard(mb, s, 4, "mb"), wlb::input_error);
}

} // namespace
