// GPU tier: CUPTI capture end to end (profiler/capture/capture_session.hpp with the CUPTI backend):
// real kernels and copies issued inside step / micro-batch / phase / layer ranges come back as
// trace events attributed to those ranges, with no loss reported; a CUPTI source destroyed while
// it captures takes back every buffer CUPTI held (none is left retired) and the next source of
// the process captures normally. Skips without a CUDA device.
#include "kernels/cuda_ops.hpp"
#include "profiler/capture/activity_source.hpp"
#include "profiler/capture/buffer_pool.hpp"
#include "profiler/capture/capture_session.hpp"
#include "support/gpu_test.hpp"

#include <algorithm>
#include <cmath>
#include <gtest/gtest.h>
#include <vector>

namespace pf = wlb::profiler;
namespace kc = wlb::kernels::cuda;
namespace rt = wlb::runtime;
using wlb::kernels::bf16;

namespace {

TEST(CuptiCapture, KernelsAndCopiesAreAttributedToTheirRanges) {
    WLB_REQUIRE_GPU();
    auto session = pf::capture_session::make_default(0);
    session->start();
    ASSERT_TRUE(session->capturing()) << session->finish().report.dump();
    kc::stream compute;
    session->register_stream(compute.get(), rt::lane::compute);

    const wlb::kernels::index n = 1024, d = 64;
    std::vector<wlb::kernels::index> cu = {0, n}, offsets = {0};
    wlb::kernels::attention_chunks chunks;
    chunks.cu_seqlens_q = cu;
    chunks.cu_seqlens_k = cu;
    chunks.q_offsets = offsets;
    chunks.head_dim = d;
    chunks.scale = 1.0 / std::sqrt(static_cast<double>(d));
    kc::attention_plan plan(chunks);
    kc::device_array<bf16> q(n * d), out(n * d);
    kc::device_array<float> lse(n);
    {
        auto step = session->step(4);
        auto mb = session->micro_batch(1);
        auto ph = session->phase(rt::phase::fwd);
        auto layer = session->layer(0);
        kc::fill_random(q.data(), n * d, 1, 1.0f, compute.get());
        kc::attention_forward(plan, q.data(), d, q.data(), d, q.data(), d, out.data(), d,
                              lse.data(), compute.get());
        kc::synchronize(compute.get());
        (void)out.download(); // a DtoH copy inside the ranges
    }
    const auto r = session->finish();
    EXPECT_EQ(r.report["losses"]["dropped_records"], 0) << r.report.dump();
    EXPECT_EQ(r.report["losses"]["buffers_refused"], 0);
    EXPECT_TRUE(r.losses.warnings.empty()) << r.report.dump();
    auto named = [&](std::string_view part) {
        return std::find_if(r.events.begin(), r.events.end(),
                            [&](const auto& e) { return e.name.find(part) != std::string::npos; });
    };
    const auto attn = named("fwd_mma");
    ASSERT_NE(attn, r.events.end()) << r.report.dump();
    EXPECT_EQ(attn->where, rt::lane::compute);
    EXPECT_EQ(attn->step, 4);
    EXPECT_EQ(attn->micro_batch, 1);
    EXPECT_EQ(attn->ph, rt::phase::fwd);
    EXPECT_GT(attn->dur_ns, 0);
    const auto fill = named("fill_uniform");
    ASSERT_NE(fill, r.events.end());
    EXPECT_LE(fill->end_ns(), attn->start_ns) << "stream order";
    const auto copy = named("memcpy DtoH");
    ASSERT_NE(copy, r.events.end());
    ASSERT_TRUE(copy->bytes.has_value());
    EXPECT_EQ(*copy->bytes, static_cast<double>(n * d * 2));
    EXPECT_EQ(copy->step, 4);
}

// The CUPTI source's destructor stops a running capture: its forced flush makes CUPTI hand back
// every buffer it holds, so the pool retires none (a buffer CUPTI kept would be retired, never
// freed under it: buffer_pool.hpp). Small buffers, so that CUPTI holds several while kernels
// run. A second source then starts in the same process and sees its own kernels.
TEST(CuptiCapture, ASourceDestroyedWhileCapturingTakesBackEveryBuffer) {
    WLB_REQUIRE_GPU();
    const std::size_t retired_before = pf::buffer_pool::retired_count();
    pf::cupti_options options;
    options.buffer_bytes = std::size_t{64} << 10;
    options.max_buffers = 8;
    kc::stream s;
    kc::device_array<bf16> x(1 << 20);
    {
        auto first = pf::make_cupti_source(options);
        ASSERT_NE(first.source, nullptr) << first.reason;
        first.source->start();
        for (int i = 0; i < 2000; ++i)
            kc::fill_random(x.data(), 1 << 20, static_cast<std::uint64_t>(i), 1.0f, s.get());
        // No synchronize and no stop: the destructor stops the capture with kernels in flight.
    }
    EXPECT_EQ(pf::buffer_pool::retired_count(), retired_before)
        << "CUPTI kept buffers past the destructor's forced flush";
    kc::synchronize(s.get());

    auto second = pf::make_cupti_source({});
    ASSERT_NE(second.source, nullptr) << second.reason;
    second.source->start();
    for (int i = 0; i < 10; ++i)
        kc::fill_random(x.data(), 1 << 20, static_cast<std::uint64_t>(i), 1.0f, s.get());
    kc::synchronize(s.get());
    second.source->stop();
    const auto batch = second.source->drain();
    const auto kernels = std::count_if(
        batch.activities.begin(), batch.activities.end(),
        [](const pf::device_activity& a) { return a.kind == pf::activity_kind::kernel; });
    EXPECT_EQ(kernels, 10) << "the second source sees exactly its own kernels";
    EXPECT_EQ(batch.losses.buffers_refused, 0u);
    EXPECT_EQ(batch.losses.dropped_records, 0u);
}

} // namespace
