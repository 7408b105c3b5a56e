// The run's numerics over the fake communicator: for every layout of at most 8 ranks combining
// tp, cp, pp (with and without vpp) and dp in 1-2 (and cp=4), every sharding policy (per-seq,
// per-doc, adaptive, hybrid, from tuner::make_sharder) and packer-made micro-batches (plain:
// fixed-length; wlb: variable-length), the loss and every parameter gradient of the CPU trainer
// (the pipeline schedule of the simulator, the executor of `wlbtune run`) equal a single-rank run
// of the same global batch within 1e-5 relative in double; float within 1e-3 relative plus 1e-5
// of the tensor's largest gradient.
#include "base/error.hpp"
#include "runtime/comm/fake_communicator.hpp"
#include "support/run_batches.hpp"
#include "tuner/sharding/make_sharder.hpp"

#include <gtest/gtest.h>
#include <mutex>

using namespace wlb;
using namespace wlb::test;

namespace {

struct layout_case {
    int tp, cp, pp, dp, vpp;
};

std::vector<layout_case> all_layouts() {
    std::vector<layout_case> out;
    for (int dp : {1, 2})
        for (int pp : {1, 2})
            for (int cp : {1, 2, 4})
                for (int tp : {1, 2})
                    for (int vpp : {1, 2}) {
                        if (tp * cp * pp * dp > 8 || (vpp == 2 && pp == 1))
                            continue;
                        if (cp == 4 && tp * pp * dp > 2)
                            continue; // cp=4 with one other axis at 2
                        out.push_back({tp, cp, pp, dp, vpp});
                    }
    return out;
}

template <typename T>
void check_layout(const layout_case& lc) {
    const runtime::layout l(lc.tp, lc.cp, lc.pp, lc.dp, lc.vpp);
    for (auto packing : run_test_packings())
        for (auto sharding : run_test_shardings()) {
            std::mutex mu;
            std::string first_problem;
            double worst = 0;
            runtime::fake_world::run(l.world_size(), 30.0, [&](runtime::communicator& world) {
                double w = 0;
                auto problem = check_run_case<T>(world, l, packing, sharding, w);
                std::lock_guard lock(mu);
                worst = std::max(worst, w);
                if (first_problem.empty())
                    first_problem = problem;
            });
            EXPECT_TRUE(first_problem.empty()) << first_problem;
            EXPECT_LE(worst, 1.0);
        }
}

class RunNumerics : public ::testing::TestWithParam<layout_case> {};

TEST_P(RunNumerics, LossAndEveryGradientEqualTheSingleRankRunForEveryShardingAndPacking) {
    check_layout<double>(GetParam());
}

std::string layout_name(const ::testing::TestParamInfo<layout_case>& info) {
    const auto& c = info.param;
    return fmt::format("tp{}_cp{}_pp{}_dp{}_vpp{}", c.tp, c.cp, c.pp, c.dp, c.vpp);
}

INSTANTIATE_TEST_SUITE_P(Layouts, RunNumerics, ::testing::ValuesIn(all_layouts()), layout_name);

TEST(RunNumericsFloat, FloatRunsMatchTheDoubleReferenceToTheStatedTolerance) {
    for (const auto& lc :
         {layout_case{2, 2, 2, 1, 1}, layout_case{1, 2, 2, 2, 2}, layout_case{1, 4, 1, 2, 1}})
        check_layout<float>(lc);
}

TEST(RunNumerics, TheLayoutListCoversEveryAxisCombination) {
    const auto layouts = all_layouts();
    // 15 combinations of tp, cp, pp, dp in {1, 2} within 8 ranks, the 7 with pp=2 again with
    // vpp=2, and cp=4 alone, with each of tp, pp, dp at 2, and with pp=2,vpp=2.
    EXPECT_EQ(layouts.size(), 15u + 7u + 5u);
}

TEST(RunBatches, PlainPacksFixedLengthAndWlbVariableLengthMicroBatches) {
    const runtime::layout l(1, 2, 1, 2);
    const auto plain =
        run_test_step(l, tuner::packing_policy::plain, tuner::sharding_policy::per_seq);
    const auto wlb = run_test_step(l, tuner::packing_policy::wlb, tuner::sharding_policy::per_seq);
    std::vector<std::int64_t> plain_tokens, wlb_tokens;
    for (const auto& r : plain.batch.replicas)
        for (const auto& mb : r.micro_batches)
            plain_tokens.push_back(mb.tokens());
    for (const auto& r : wlb.batch.replicas)
        for (const auto& mb : r.micro_batches)
            wlb_tokens.push_back(mb.tokens());
    ASSERT_EQ(plain_tokens.size(), 4u);
    ASSERT_EQ(wlb_tokens.size(), 4u);
    for (auto t : plain_tokens)
        EXPECT_EQ(t, run_test_context);
    EXPECT_NE(*std::min_element(wlb_tokens.begin(), wlb_tokens.end()),
              *std::max_element(wlb_tokens.begin(), wlb_tokens.end()))
        << "the wlb micro-batches should differ in length";
}

TEST(RunBatches, EveryShardingPolicyTilesEveryMicroBatchAndAdaptiveChoosesPerMicroBatch) {
    const runtime::layout l(1, 2, 1, 2);
    for (auto sharding : run_test_shardings()) {
        const auto s = run_test_step(l, tuner::packing_policy::wlb, sharding);
        for (std::size_t d = 0; d < s.batch.replicas.size(); ++d)
            for (std::size_t m = 0; m < s.batch.replicas[d].micro_batches.size(); ++m)
                EXPECT_NO_THROW(runtime::validate_shard(s.batch.replicas[d].micro_batches[m],
                                                        s.shards[d][m], l.cp(), "test"));
    }
}

TEST(RunBatches, DataThatEndsBeforeTheStepsIsAnInputErrorNamingTheSource) {
    const runtime::layout l(1, 1, 1, 1);
    const auto model = run_test_model();
    const auto costs =
        tuner::run_cost_model(runtime::model_spec_of(model), tuner::hardware_preset("cpu-dev-vm"),
                              l, runtime::precision::f32);
    tuner::packing_config pc;
    pc.policy = tuner::packing_policy::plain;
    pc.context_tokens = 16;
    pc.micro_batches = 2;
    tuner::stream_options so;
    so.context_tokens = 16;
    tuner::document_stream stream(
        std::make_unique<tuner::vector_source>(std::vector<std::int64_t>{10, 10, 10, 10}), so);
    const auto packer = tuner::make_packer(pc, costs);
    const auto sharder = tuner::make_sharder({}, costs);
    try {
        (void)tuner::pack_and_shard(stream, *packer, *sharder, 5, "lengths.txt");
        FAIL() << "expected an input error";
    } catch (const wlb::input_error& e) {
        EXPECT_NE(std::string(e.what()).find("lengths.txt: the data ends after 1 full steps"),
                  std::string::npos)
            << e.what();
    }
}

} // namespace
