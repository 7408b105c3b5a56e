// The capture of `run --backend cuda` without a GPU: several ranks of one process share one
// capture backend (an emulated run's ranks, one CUPTI session per process), each with its own
// session; hand-made records reach the rank whose ranges they were issued in (or whose stream
// they ran on), attributed to its step and micro-batch; the kernel-level trace directory reads
// back with the batches and a report per rank; a capture without a backend still writes its
// (empty) trace and says why.
#include "profiler/capture/run_capture.hpp"
#include "profiler/capture/shared_source.hpp"
#include "runtime/trace/trace.hpp"
#include "support/fake_activity_source.hpp"

#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

namespace pf = wlb::profiler;
namespace rt = wlb::runtime;

namespace {

struct temp_dir {
    std::filesystem::path path;
    temp_dir() {
        path = std::filesystem::temp_directory_path() /
               ("wlb-run-capture-" + std::to_string(::getpid()) + "-" +
                std::to_string(reinterpret_cast<std::uintptr_t>(this)));
        std::filesystem::remove_all(path);
    }
    ~temp_dir() { std::filesystem::remove_all(path); }
};

TEST(SharedSource, EachViewGetsTheRecordsOfItsOwnContextsAndStreams) {
    auto state = std::make_shared<wlb::test::fake_capture_state>();
    pf::shared_activity_source shared(std::make_unique<wlb::test::fake_activity_source>(state));
    auto v0 = shared.view(0), v1 = shared.view(1);
    int s0 = 0, s1 = 0;
    state->stream_ids[&s0] = 5;
    state->stream_ids[&s1] = 6;
    EXPECT_EQ(v1->stream_id(&s1), 6u);
    v0->start();
    v1->start();
    v0->push_context(1);
    state->launch("a", 5, 10);
    v0->pop_context();
    v1->push_context(1); // the same local id on another rank
    state->launch("b", 6, 10);
    v1->pop_context();
    state->launch("c", 6, 10); // no context: the stream's owner
    state->launch("d", 9, 10); // neither: the first view
    v0->stop();
    const auto b0 = v0->drain();
    const auto b1 = v1->drain();
    ASSERT_EQ(b0.activities.size(), 2u);
    EXPECT_EQ(b0.activities[0].name, "a");
    EXPECT_EQ(b0.activities[1].name, "d");
    ASSERT_EQ(b1.activities.size(), 2u);
    EXPECT_EQ(b1.activities[0].name, "b");
    EXPECT_EQ(b1.activities[1].name, "c");
    ASSERT_EQ(b0.links.size(), 1u);
    ASSERT_EQ(b1.links.size(), 1u);
    EXPECT_EQ(b0.links[0].context_id, 1u) << "ids come back untagged";
    EXPECT_EQ(b1.links[0].context_id, 1u);
    EXPECT_TRUE(state->stopped);
}

TEST(RunCapture, RanksOfOneProcessWriteTheirOwnKernelTraceWithTheBatches) {
    temp_dir tmp;
    auto state = std::make_shared<wlb::test::fake_capture_state>();
    auto capture = std::make_shared<pf::run_capture>(
        pf::source_result{std::make_unique<wlb::test::fake_activity_source>(state), ""}, nullptr);
    auto make = capture->factory();
    auto r0 = make(0), r1 = make(1);
    int comm_stream = 0;
    state->stream_ids[&comm_stream] = 7;
    r1->register_stream(&comm_stream, rt::lane::cp);
    r0->step(3);
    r0->micro_batch(0);
    r0->phase(rt::phase::fwd);
    state->launch("void wlb::kernels::cuda_detail::(anonymous namespace)::fwd_mma<128>(args)", 1,
                  100);
    r0->end();
    r0->end();
    r0->end();
    r1->step(3);
    r1->micro_batch(1);
    r1->phase(rt::phase::bwd);
    state->launch("sm90_xmma_gemm_bf16(args)", 2, 100);
    r1->end();
    r1->end();
    r1->end();
    state->launch("ncclDevKernel_AllGather_RING_LL(args)", 7, 50);
    rt::sharded_step step;
    step.step = 3;
    step.replicas.resize(1);
    const auto summary =
        capture->finish(tmp.path.string(), rt::layout(1, 2, 1, 1), {step}, nullptr);
    EXPECT_EQ(summary.source, "fake");
    EXPECT_EQ(summary.events, 3);
    rt::trace_reader reader(tmp.path.string());
    EXPECT_EQ(reader.meta().source, "fake");
    EXPECT_EQ(reader.meta().job_layout.cp(), 2);
    EXPECT_EQ(reader.read_batches().size(), 1u);
    const auto t = reader.read_all();
    ASSERT_EQ(t.ranks.size(), 2u);
    ASSERT_EQ(t.ranks[0].size(), 1u);
    EXPECT_EQ(t.ranks[0][0].micro_batch, 0);
    EXPECT_EQ(t.ranks[0][0].ph, rt::phase::fwd);
    EXPECT_EQ(t.ranks[0][0].step, 3);
    EXPECT_EQ(t.ranks[0][0].start_ns, 0) << "times start at the job's first record";
    ASSERT_EQ(t.ranks[1].size(), 2u);
    EXPECT_EQ(t.ranks[1][0].micro_batch, 1);
    EXPECT_EQ(t.ranks[1][0].ph, rt::phase::bwd);
    EXPECT_EQ(t.ranks[1][1].where, rt::lane::cp);
    EXPECT_EQ(t.ranks[1][1].kind, rt::event_kind::collective);
    for (int r = 0; r < 2; ++r) {
        std::ifstream in(tmp.path / ("capture_rank_0000" + std::to_string(r) + ".json"));
        ASSERT_TRUE(in) << r;
        const auto report = nlohmann::json::parse(in);
        EXPECT_EQ(report.at("source"), "fake");
        EXPECT_EQ(report.at("attribution").at("unattributed"), r == 1 ? 1 : 0);
    }
}

TEST(RunCapture, WithoutABackendTheRangesStillWorkAndTheTraceSaysWhy) {
    temp_dir tmp;
    auto capture = std::make_shared<pf::run_capture>(
        pf::source_result{nullptr, "no CUDA device: test"}, nullptr);
    auto r = capture->ranges(0);
    r->step(0);
    r->layer(2);
    r->end();
    r->end();
    r->end(); // one too many is ignored, not a crash
    const auto summary = capture->finish(tmp.path.string(), rt::layout(1, 1, 1, 1), {}, nullptr);
    EXPECT_EQ(summary.events, 0);
    ASSERT_FALSE(summary.warnings.empty());
    EXPECT_NE(summary.warnings.front().find("no CUDA device: test"), std::string::npos);
    rt::trace_reader reader(tmp.path.string());
    EXPECT_TRUE(reader.read_all().ranks.at(0).empty());
}

} // namespace
