// The device-capture path without a GPU: hand-made activity records (the seam of
// profiler/capture/activity_source.hpp) become trace events (lanes, kinds, names, bytes,
// attribution to the step / micro-batch / stage / phase ranges, lanes free of overlaps, time
// origin); the capture session links launches to the ranges open when they were issued; a failing
// or absent backend is warned about, recorded and survived; losses reach the report; the buffer
// pool is bounded and reused; and captured events round-trip through the wlbtune.trace/1 directory.
#include "base/error.hpp"
#include "profiler/capture/activity_trace.hpp"
#include "profiler/capture/buffer_pool.hpp"
#include "profiler/capture/capture_session.hpp"
#include "runtime/trace/trace.hpp"
#include "support/fake_activity_source.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <filesystem>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

namespace pf = wlb::profiler;
namespace rt = wlb::runtime;

namespace {

pf::device_activity kernel(std::string name, std::int64_t start, std::int64_t end,
                           std::uint32_t stream, std::uint32_t corr) {
    return {pf::activity_kind::kernel, std::move(name), start, end, 0, stream, corr, 0};
}

/// No two events of one lane overlap, and events are in start order (runtime/trace/trace.hpp).
void expect_trace_invariants(const std::vector<rt::trace_event>& events) {
    std::array<std::int64_t, rt::lane_count> end;
    end.fill(INT64_MIN);
    std::int64_t previous_start = INT64_MIN;
    for (const auto& e : events) {
        EXPECT_GE(e.start_ns, previous_start) << e.name;
        previous_start = e.start_ns;
        EXPECT_GE(e.dur_ns, 0) << e.name;
        auto& lane_end = end[static_cast<std::size_t>(e.where)];
        EXPECT_GE(e.start_ns, lane_end) << e.name << " overlaps on lane " << rt::lane_name(e.where);
        lane_end = std::max(lane_end, e.end_ns());
    }
}

const rt::trace_event& find(const std::vector<rt::trace_event>& events, std::string_view name) {
    auto it =
        std::find_if(events.begin(), events.end(), [&](const auto& e) { return e.name == name; });
    if (it == events.end())
        throw std::runtime_error("no event " + std::string(name));
    return *it;
}

TEST(CaptureTrace, ShortKernelNames) {
    EXPECT_EQ(pf::short_kernel_name("void foo<int, (char)1>(float*, int)"), "foo<int, (char)1>");
    EXPECT_EQ(pf::short_kernel_name("ncclDevKernel_AllGather_RING_LL(ncclDevKernelArgsStorage<"
                                    "4096ul>)"),
              "ncclDevKernel_AllGather_RING_LL");
    EXPECT_EQ(pf::short_kernel_name("void wlb::(anonymous namespace)::fwd_mma<128>(wlb::args)"),
              "wlb::(anonymous namespace)::fwd_mma<128>");
    EXPECT_EQ(pf::short_kernel_name("plain_name"), "plain_name");
}

TEST(CaptureTrace, KindsLanesNamesBytesAndAttribution) {
    pf::capture_batch b;
    pf::range_context fwd;
    fwd.step = 2;
    fwd.micro_batch = 1;
    fwd.stage = 3;
    fwd.virtual_stage = 1;
    fwd.ph = rt::phase::fwd;
    fwd.layer = 7;
    pf::range_context bwd = fwd;
    bwd.ph = rt::phase::bwd;
    pf::range_context step_only;
    step_only.step = 2;
    b.contexts = {{1, fwd}, {2, bwd}, {3, step_only}};
    b.ranges.push_back({pf::range_level::step, "step 2", 1000, 9000, 3});
    b.activities.push_back(kernel("void wlb::attn<128>(args)", 1100, 1400, 7, 11));
    b.activities.push_back(kernel(
        "ncclDevKernel_AllGather_RING_LL(ncclDevKernelArgsStorage<4096ul>)", 1200, 1500, 9, 12));
    b.activities.push_back(kernel("ncclDevKernel_SendRecv(args)", 1300, 1600, 10, 13));
    b.activities.push_back({pf::activity_kind::memcpy, "memcpy HtoD", 1500, 1550, 0, 7, 14, 4096});
    b.activities.push_back({pf::activity_kind::memset, "memset", 1600, 1610, 0, 8, 15, 512});
    b.activities.push_back(
        {pf::activity_kind::synchronization, "sync stream", 1700, 1800, 0, 7, 16, 0});
    b.activities.push_back(kernel("unlinked(int)", 2000, 2100, 7, 99));
    b.links = {{11, 1}, {12, 2}, {13, 2}, {14, 1}, {15, 1}, {16, 1}};

    pf::conversion_options o;
    o.rank = 5;
    o.origin_ns = 1000;
    o.stream_lanes = {{9, rt::lane::cp}, {10, rt::lane::pp}};
    pf::conversion_stats stats;
    const auto events = pf::activities_to_trace(b, o, stats);
    ASSERT_EQ(events.size(), 7u);
    expect_trace_invariants(events);

    const auto& attn = find(events, "wlb::attn<128>");
    EXPECT_EQ(attn.rank, 5);
    EXPECT_EQ(attn.where, rt::lane::compute);
    EXPECT_EQ(attn.kind, rt::event_kind::compute);
    EXPECT_EQ(attn.start_ns, 100);
    EXPECT_EQ(attn.dur_ns, 300);
    EXPECT_EQ(attn.step, 2);
    EXPECT_EQ(attn.micro_batch, 1);
    EXPECT_EQ(attn.stage, 3);
    EXPECT_EQ(attn.virtual_stage, 1);
    EXPECT_EQ(attn.ph, rt::phase::fwd);

    const auto& gather = find(events, "ncclDevKernel_AllGather_RING_LL");
    EXPECT_EQ(gather.where, rt::lane::cp);
    EXPECT_EQ(gather.kind, rt::event_kind::collective);
    EXPECT_EQ(gather.ph, rt::phase::bwd);
    const auto& p2p = find(events, "ncclDevKernel_SendRecv");
    EXPECT_EQ(p2p.where, rt::lane::pp);
    EXPECT_EQ(p2p.kind, rt::event_kind::recv);

    const auto& copy = find(events, "memcpy HtoD");
    EXPECT_EQ(copy.kind, rt::event_kind::other);
    ASSERT_TRUE(copy.bytes.has_value());
    EXPECT_EQ(*copy.bytes, 4096.0);
    EXPECT_EQ(*find(events, "memset").bytes, 512.0);
    EXPECT_EQ(find(events, "sync stream").where, rt::lane::host);

    const auto& lone = find(events, "unlinked");
    EXPECT_EQ(lone.step, 2) << "takes the step of the step range it falls in";
    EXPECT_EQ(lone.micro_batch, -1);
    EXPECT_EQ(stats.unattributed, 1u);
    EXPECT_EQ(stats.kernels, 4u);
    EXPECT_EQ(stats.memcpys, 1u);
    EXPECT_EQ(stats.memsets, 1u);
    EXPECT_EQ(stats.syncs, 1u);
    EXPECT_EQ(stats.overlaps_clipped, 0u) << "compute: attn 1100-1400, memcpy 1500-1550, "
                                             "memset 1600-1610, unlinked 2000-2100";
}

TEST(CaptureTrace, OverlappingEventsOfALaneAreSerializedAndCounted) {
    pf::capture_batch b;
    b.activities.push_back(kernel("a", 0, 100, 1, 0));
    b.activities.push_back(kernel("b", 50, 80, 2, 0));   // inside a
    b.activities.push_back(kernel("c", 90, 200, 3, 0));  // starts inside a
    b.activities.push_back(kernel("d", 300, 400, 4, 0)); // clear
    b.activities.push_back(kernel("bad", 500, 400, 4, 0));
    pf::conversion_stats stats;
    const auto events = pf::activities_to_trace(b, {}, stats);
    expect_trace_invariants(events);
    EXPECT_EQ(stats.overlaps_clipped, 2u);
    EXPECT_EQ(stats.clipped_ns, 30 + 10);
    EXPECT_EQ(stats.invalid, 1u);
    EXPECT_EQ(find(events, "b").dur_ns, 0);
    EXPECT_EQ(find(events, "c").start_ns, 100);
    EXPECT_EQ(find(events, "c").dur_ns, 100);
    EXPECT_EQ(find(events, "d").dur_ns, 100);
    EXPECT_EQ(stats.unattributed, 4u);
}

TEST(CaptureSession, RangesLinkLaunchesToTheContextTheyWereIssuedIn) {
    auto state = std::make_shared<wlb::test::fake_capture_state>();
    pf::capture_session session(3, std::make_unique<wlb::test::fake_activity_source>(state),
                                nullptr);
    session.start();
    EXPECT_TRUE(session.capturing());
    session.register_stream_id(21, rt::lane::tp);
    {
        auto s = session.step(5);
        state->launch("step_prologue", 20, 10);
        for (int mb = 0; mb < 2; ++mb) {
            auto m = session.micro_batch(mb);
            auto st = session.stage(1, 0);
            {
                auto ph = session.phase(rt::phase::fwd);
                for (int layer = 0; layer < 2; ++layer) {
                    auto l = session.layer(layer);
                    state->launch("attention_fwd", 20, 100);
                    state->launch("ncclDevKernel_ReduceScatter", 21, 30);
                }
            }
            auto ph = session.phase(rt::phase::bwd);
            state->launch("attention_bwd", 20, 200);
        }
    }
    state->launch("after_step", 20, 10);
    const auto r = session.finish(1000);
    EXPECT_TRUE(state->stopped);
    EXPECT_TRUE(state->stack.empty()) << "every pushed context was popped";
    // 1 step + 2 x (micro-batch + stage + fwd + 2 layers + bwd) ranges.
    EXPECT_EQ(state->pushed.size(), 13u);
    EXPECT_EQ(r.report["records"]["ranges"], 13);
    ASSERT_EQ(r.events.size(), 12u);
    expect_trace_invariants(r.events);
    int fwd = 0, bwd = 0, tp = 0;
    for (const auto& e : r.events) {
        EXPECT_EQ(e.rank, 3);
        if (e.name == "attention_fwd") {
            ++fwd;
            EXPECT_EQ(e.ph, rt::phase::fwd);
            EXPECT_EQ(e.stage, 1);
            EXPECT_EQ(e.step, 5);
        } else if (e.name == "attention_bwd") {
            EXPECT_EQ(e.micro_batch, bwd);
            ++bwd;
            EXPECT_EQ(e.ph, rt::phase::bwd);
        } else if (e.name == "ncclDevKernel_ReduceScatter") {
            ++tp;
            EXPECT_EQ(e.where, rt::lane::tp);
            EXPECT_EQ(e.kind, rt::event_kind::collective);
        } else if (e.name == "step_prologue") {
            EXPECT_EQ(e.micro_batch, -1);
            EXPECT_EQ(e.step, 5);
        }
    }
    EXPECT_EQ(fwd, 4);
    EXPECT_EQ(bwd, 2);
    EXPECT_EQ(tp, 4);
    EXPECT_EQ(r.stats.unattributed, 1u) << "only the launch after the step";
    EXPECT_TRUE(r.losses.warnings.empty());
}

TEST(CaptureSession, AFailingBackendIsWarnedAboutRecordedAndTheRunGoesOn) {
    auto state = std::make_shared<wlb::test::fake_capture_state>();
    state->fail_start = true;
    pf::capture_session session(0, std::make_unique<wlb::test::fake_activity_source>(state),
                                nullptr);
    EXPECT_NO_THROW(session.start());
    EXPECT_FALSE(session.capturing());
    {
        auto s = session.step(0); // ranges still work without a backend
        auto l = session.layer(1);
        EXPECT_EQ(session.context().layer, 1);
    }
    const auto r = session.finish();
    EXPECT_TRUE(r.events.empty());
    ASSERT_EQ(r.losses.warnings.size(), 1u);
    EXPECT_NE(r.losses.warnings[0].find("fake start failure"), std::string::npos);
    EXPECT_EQ(r.report["warnings"].size(), 1u);
}

TEST(CaptureSession, RecordsBeforeAMidRunFailureAreKept) {
    auto state = std::make_shared<wlb::test::fake_capture_state>();
    pf::capture_session session(0, std::make_unique<wlb::test::fake_activity_source>(state),
                                nullptr);
    session.start();
    {
        auto s = session.step(1);
        state->launch("before", 1, 10);
        state->fail_push = true;
        auto m = session.micro_batch(0); // the backend throws here: capture switches off
        state->launch("after", 1, 10);   // the backend would not record it any more
    }
    EXPECT_FALSE(session.capturing());
    const auto r = session.finish();
    ASSERT_EQ(r.events.size(), 1u) << "what the backend held at the failure, nothing after";
    EXPECT_EQ(r.events[0].name, "before");
    EXPECT_EQ(r.events[0].step, 1);
    ASSERT_EQ(r.losses.warnings.size(), 1u);
    EXPECT_NE(r.losses.warnings[0].find("fake push failure"), std::string::npos);
}

TEST(CaptureSession, NoBackendIsReportedNotSilent) {
    pf::capture_session session(0, nullptr, nullptr, "no CUDA device: test");
    session.start();
    EXPECT_FALSE(session.capturing());
    const auto r = session.finish();
    ASSERT_EQ(r.losses.warnings.size(), 1u);
    EXPECT_NE(r.losses.warnings[0].find("no CUDA device: test"), std::string::npos);
    EXPECT_EQ(r.report["source"], "none");
}

TEST(CaptureSession, LossesReachTheReport) {
    auto state = std::make_shared<wlb::test::fake_capture_state>();
    state->pending.losses.dropped_records = 7;
    state->pending.losses.buffers_refused = 2;
    state->pending.losses.unsupported_records = 3;
    pf::capture_session session(0, std::make_unique<wlb::test::fake_activity_source>(state),
                                nullptr);
    session.start();
    const auto r = session.finish();
    EXPECT_EQ(r.report["losses"]["dropped_records"], 7);
    EXPECT_EQ(r.report["losses"]["buffers_refused"], 2);
    EXPECT_EQ(r.report["losses"]["unsupported_records"], 3);
    EXPECT_EQ(r.report["source"], "fake");
}

TEST(BufferPool, BoundedReusedAlignedAndRefusalsCounted) {
    pf::buffer_pool pool(1000, 2, 64);
    auto* a = pool.acquire();
    auto* b = pool.acquire();
    ASSERT_NE(a, nullptr);
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(a) % 64, 0u);
    EXPECT_EQ(pool.acquire(), nullptr);
    EXPECT_EQ(pool.refused(), 1u);
    EXPECT_EQ(pool.outstanding(), 2);
    pool.release(a);
    EXPECT_EQ(pool.acquire(), a) << "a released buffer is reused";
    EXPECT_EQ(pool.allocated(), 2);
    std::uint8_t foreign[8];
    EXPECT_THROW(pool.release(foreign), wlb::internal_error);
    pool.release(b);
    EXPECT_THROW(pool.release(b), wlb::internal_error) << "double release";
    EXPECT_THROW(pf::buffer_pool(0, 1), wlb::internal_error);
}

// A pool destroyed while its holder (CUPTI after a failed stop) still has buffers: those are
// retired, not freed; they stay writable until handed back, which frees them once.
TEST(BufferPool, BuffersStillOutWhenThePoolGoesAreRetiredNotFreed) {
    const std::size_t before = pf::buffer_pool::retired_count();
    std::uint8_t* kept = nullptr;
    {
        pf::buffer_pool pool(4096, 3, 64);
        auto* a = pool.acquire();
        kept = pool.acquire();
        ASSERT_NE(kept, nullptr);
        EXPECT_TRUE(pool.lent(kept));
        pool.release(a);
        EXPECT_FALSE(pool.lent(a)) << "released";
        std::uint8_t foreign[8];
        EXPECT_FALSE(pool.lent(foreign));
    }
    EXPECT_EQ(pf::buffer_pool::retired_count(), before + 1) << "only the buffer still out";
    std::memset(kept, 0xab, 4096); // still owned memory (AddressSanitizer would flag a free)
    std::uint8_t foreign[8];
    EXPECT_FALSE(pf::buffer_pool::release_retired(foreign));
    EXPECT_TRUE(pf::buffer_pool::release_retired(kept));
    EXPECT_EQ(pf::buffer_pool::retired_count(), before);
    EXPECT_FALSE(pf::buffer_pool::release_retired(kept)) << "freed once";
}

TEST(CaptureTrace, CapturedEventsRoundTripThroughATraceDirectory) {
    auto state = std::make_shared<wlb::test::fake_capture_state>();
    pf::capture_session session(1, std::make_unique<wlb::test::fake_activity_source>(state),
                                nullptr);
    session.start();
    {
        auto s = session.step(0);
        auto m = session.micro_batch(0);
        auto p = session.phase(rt::phase::fwd);
        state->launch("k", 1, 50);
    }
    auto r = session.finish(1000);
    rt::trace t;
    t.meta.source = "cuda";
    t.meta.job_layout = rt::layout::parse("tp=2");
    t.meta.steps = 1;
    t.ranks.resize(2);
    t.ranks[1] = r.events;
    const auto dir = std::filesystem::temp_directory_path() /
                     ("wlb_capture_trace_" + std::to_string(::getpid()));
    nlohmann::json extra = {{"capture", r.report}};
    rt::write_trace_dir(dir.string(), t, &extra);
    const auto back = rt::trace_reader(dir.string()).read_all();
    ASSERT_EQ(back.ranks.size(), 2u);
    ASSERT_EQ(back.ranks[1].size(), 1u);
    EXPECT_EQ(back.ranks[1][0].name, "k");
    EXPECT_EQ(back.ranks[1][0].ph, rt::phase::fwd);
    EXPECT_EQ(back.ranks[1][0].dur_ns, 50);
    EXPECT_EQ(back.meta.source, "cuda");
    std::filesystem::remove_all(dir);
}

} // namespace
