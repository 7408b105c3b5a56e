// Partial jobs (issue #16): sampled PyTorch profiler traces of 2 of 128 ranks get a breakdown and
// stragglers among the ranks present and a precise statement of what the what-if could not
// cover; a timer timeline missing one rank is attributed over its complete DP replicas. The
// per-rank breakdown is checked against HTA's temporal breakdown definitions (idle, compute,
// non-compute), computed here independently from the kernels the test wrote.
#include "profiler/analysis/analysis.hpp"
#include "reports/analysis_report.hpp"
#include "support/cli_runner.hpp"
#include "support/timer_timeline.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <fstream>
#include <gtest/gtest.h>
#include <limits>
#include <map>

namespace wlb::profiler {
namespace {

namespace fs = std::filesystem;
using wlb::test::temp_dir;

std::string us(std::int64_t ns) {
    return fmt::format("{}.{:03d}", ns / 1000, ns % 1000);
}

struct kernel {
    std::string name, cat;
    int stream = 7;
    std::int64_t start_ns = 0, end_ns = 0;
};

enum class hta_kind { computation, communication, memory };

// HTA's kernel types (hta/utils/utils.py get_kernel_type): communication if the name has
// "nccl", memory for memcpy / memset, computation otherwise.
hta_kind hta_type(const kernel& k) {
    if (k.name.find("nccl") != std::string::npos)
        return hta_kind::communication;
    if (k.cat == "gpu_memcpy" || k.cat == "gpu_memset")
        return hta_kind::memory;
    return hta_kind::computation;
}

std::int64_t merged_length(std::vector<std::pair<std::int64_t, std::int64_t>> v) {
    std::sort(v.begin(), v.end());
    std::int64_t n = 0, end = std::numeric_limits<std::int64_t>::min();
    for (const auto& [a, b] : v) {
        const std::int64_t from = std::max(a, end);
        if (b > from)
            n += b - from;
        end = std::max(end, b);
    }
    return n;
}

// One sampled rank of a 128-rank job: per step a GEMM, a FlashAttention kernel, an element-wise
// kernel and a device copy on stream 7, an all-reduce on stream 20 that overlaps the last two.
// `slow`: its kernels take that much longer (a slow GPU).
std::vector<kernel> rank_kernels(int step, double slow) {
    const std::int64_t t0 = 1'000'000 + step * 10'000'000;
    auto d = [&](std::int64_t ns) {
        return static_cast<std::int64_t>(std::llround(ns * slow));
    };
    std::vector<kernel> k;
    std::int64_t t = t0;
    k.push_back({"sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n", "kernel", 7, t, t + d(2'000'000)});
    t += d(2'000'000) + 50'000;
    k.push_back(
        {"void flash_fwd_kernel<Flash_fwd_kernel_traits<128>>", "kernel", 7, t, t + d(1'500'000)});
    t += d(1'500'000);
    k.push_back(
        {"void at::native::vectorized_elementwise_kernel<4>", "kernel", 7, t, t + d(300'000)});
    const std::int64_t ar = t + 100'000;
    t += d(300'000) + 200'000;
    k.push_back({"Memcpy DtoD (Device -> Device)", "gpu_memcpy", 7, t, t + 250'000});
    k.push_back({"ncclDevKernel_AllReduce_Sum_bf16_RING_LL", "kernel", 20, ar, ar + 900'000});
    return k;
}

// `rank` < 0: distributedInfo names no rank.
std::string kineto_file(int rank, const std::vector<std::vector<kernel>>& steps) {
    std::vector<std::string> ev;
    std::int64_t corr = 1;
    for (std::size_t s = 0; s < steps.size(); ++s) {
        const auto& ks = steps[s];
        std::int64_t lo = ks.front().start_ns, hi = 0;
        for (const auto& k : ks) {
            lo = std::min(lo, k.start_ns);
            hi = std::max(hi, k.end_ns);
        }
        ev.push_back(fmt::format(
            R"({{"ph": "X", "cat": "user_annotation", "name": "ProfilerStep#{}", "pid": 1, "tid": 1, "ts": {}, "dur": {}}})",
            s, us(lo - 100'000), us(hi - lo + 50'000)));
        for (const auto& k : ks) {
            ev.push_back(fmt::format(
                R"({{"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "pid": 1, "tid": 1, "ts": {}, "dur": 4.000, "args": {{"correlation": {}}}}})",
                us(k.start_ns - 20'000), corr));
            ev.push_back(fmt::format(
                R"({{"ph": "X", "cat": "{}", "name": "{}", "pid": 0, "tid": {}, "ts": {}, "dur": {}, "args": {{"stream": {}, "correlation": {}}}}})",
                k.cat, k.name, k.stream, us(k.start_ns), us(k.end_ns - k.start_ns), k.stream,
                corr));
            ++corr;
        }
    }
    std::string body =
        rank >= 0
            ? fmt::format("{{\"distributedInfo\": {{\"rank\": {}, \"world_size\": 128}}, "
                          "\"traceEvents\": [\n",
                          rank)
            : std::string("{\"distributedInfo\": {\"world_size\": 128}, \"traceEvents\": [\n");
    for (std::size_t i = 0; i < ev.size(); ++i)
        body += ev[i] + (i + 1 < ev.size() ? ",\n" : "\n");
    return body + "]}\n";
}

struct sampled_job {
    temp_dir dir;
    std::vector<std::string> paths;
    std::map<int, std::vector<std::vector<kernel>>> kernels; // rank -> steps
    sampled_job() {
        for (const auto& [rank, slow] : std::vector<std::pair<int, double>>{{5, 1.0}, {77, 1.25}}) {
            auto& steps = kernels[rank];
            for (int s = 0; s < 3; ++s)
                steps.push_back(rank_kernels(s, slow));
            const auto p = dir / fmt::format("rank{}.pt.trace.json", rank);
            std::ofstream(p) << kineto_file(rank, steps);
            paths.push_back(p.string());
        }
    }
};

TEST(PartialJobs, SampledKinetoRanksGetBreakdownStragglersAndWhatIsMissing) {
    sampled_job j;
    const auto r = analyze(j.paths, {});
    const auto& job = r.job;
    EXPECT_EQ(job.job_layout.world_size(), 128);
    ASSERT_EQ(r.breakdown.size(), 3u);
    for (const auto& b : r.breakdown) {
        ASSERT_EQ(b.ranks.size(), 2u);
        EXPECT_EQ(b.ranks[0].rank, 5);
        EXPECT_EQ(b.ranks[1].rank, 77);
    }
    // Stragglers among the two: rank 77 is slower on the same kernels.
    double worst = 0.0;
    int who = -1;
    for (const auto& s : r.stragglers.speed)
        if (s.relative_time > worst) {
            worst = s.relative_time;
            who = s.rank;
        }
    EXPECT_EQ(who, 77);
    EXPECT_GT(worst, 1.05);
    // No pass markers: nothing attributed, and the report says what would unlock it.
    EXPECT_EQ(r.attribution.attributed_steps, 0);
    const auto text = reports::analysis_text(r);
    EXPECT_NE(text.find("partial job: 2 of 128 ranks have a trace (ranks 5, 77)"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("record_function(\"forward-compute\")"), std::string::npos) << text;

    // With the job's layout: no replica is complete, and the statement says what each lacks.
    ingest_options o;
    o.job_layout = runtime::layout::parse("tp=8,cp=2,pp=4,dp=2");
    const auto r2 = analyze(j.paths, {o, false, {}});
    EXPECT_EQ(r2.attribution.attributed_steps, 0);
    ASSERT_FALSE(r2.attribution.steps.empty());
    const auto& why = r2.attribution.steps[0].skipped_reason;
    EXPECT_NE(why.find("no DP replica has a trace of every pipeline stage and CP rank"),
              std::string::npos)
        << why;
    EXPECT_NE(why.find("replica 0 has no trace of 7 of its 8 stage and CP rank groups"),
              std::string::npos)
        << why;
    EXPECT_NE(r2.attribution.scope.find("no what-if"), std::string::npos);
    EXPECT_EQ(r2.breakdown[0].ranks.size(), 2u);
}

// HTA's temporal breakdown (hta/analyzers/breakdown_analysis.py, get_temporal_breakdown) per
// rank over a set of kernels: kernel time = last end - first start; idle = kernel time - the
// union of all kernels; compute = the union of computation kernels (not NCCL, not memcpy or
// memset); non-compute = kernel time - compute - idle. Computed here from the kernels the test
// wrote, per step, and compared with the analysis's breakdown of the same events.
TEST(PartialJobs, PerRankBreakdownAgreesWithHtaTemporalBreakdown) {
    sampled_job j;
    const auto r = analyze(j.paths, {});
    for (const auto& b : r.breakdown)
        for (const auto& rb : b.ranks) {
            const auto& ks = j.kernels.at(rb.rank)[static_cast<std::size_t>(b.step)];
            std::int64_t first = std::numeric_limits<std::int64_t>::max(), last = 0;
            std::vector<std::pair<std::int64_t, std::int64_t>> all, comp;
            for (const auto& k : ks) {
                first = std::min(first, k.start_ns);
                last = std::max(last, k.end_ns);
                all.emplace_back(k.start_ns, k.end_ns);
                if (hta_type(k) == hta_kind::computation)
                    comp.emplace_back(k.start_ns, k.end_ns);
            }
            const double kernel_time = static_cast<double>(last - first) * 1e-9;
            const double idle = kernel_time - static_cast<double>(merged_length(all)) * 1e-9;
            const double compute = static_cast<double>(merged_length(comp)) * 1e-9;
            const double non_compute = kernel_time - compute - idle;
            SCOPED_TRACE(fmt::format("rank {} step {}", rb.rank, b.step));
            EXPECT_NEAR(rb.span_s, kernel_time, 1e-12);
            EXPECT_NEAR(rb.span_s - rb.busy_s, idle, 1e-12);
            EXPECT_NEAR(rb.compute_busy_s, compute, 1e-12);
            EXPECT_NEAR(rb.busy_s - rb.compute_busy_s, non_compute, 1e-12);
            EXPECT_GT(non_compute, 0.0) << "the copy and the exposed all-reduce";
            EXPECT_NEAR(rb.memory_s, 250e-6, 1e-12);
            // The job-wide idle adds the wait at the step's ends for the other rank.
            EXPECT_NEAR(rb.idle_s - (rb.span_s - rb.busy_s), b.seconds() - rb.span_s, 1e-9);
        }
}

// A timer timeline of tp=1, pp=2, dp=2 without rank 3 (replica 1's stage 1): the what-if
// replays replica 0, says so, and still names the heavy micro-batch.
TEST(PartialJobs, WhatIfOverTheCompleteReplicas) {
    const auto l = runtime::layout::parse("tp=1,cp=1,pp=2,dp=2");
    const auto ops = wlb::test::simulated_timers(l, 2, 4, {runtime::parse_fault("heavy-mb=2:1.8")});
    std::string ev;
    auto add = [&](const std::string& e) {
        ev += (ev.empty() ? "" : ",\n") + e;
    };
    for (int rank = 0; rank < 3; ++rank) {
        const auto c = l.coords_of(rank);
        add(fmt::format(
            R"({{"ph":"M","pid":{},"name":"process_name","args":{{"name":"rank {} tp{} cp{} pp{} dp{}"}}}})",
            rank, rank, c.tp, c.cp, c.pp, c.dp));
    }
    for (const auto& t : ops) {
        if (t.rank == 3)
            continue;
        add(fmt::format(
            R"({{"ph":"X","pid":{},"tid":0,"name":"{}","ts":{},"dur":{},"args":{{"step":{}{}}}}})",
            t.rank, t.timer, us(t.start_ns), us(t.end_ns - t.start_ns), t.step,
            t.micro_batch >= 0 ? fmt::format(R"(,"micro_batch":{})", t.micro_batch) : ""));
    }
    temp_dir dir;
    const auto p = dir / "partial.json";
    std::ofstream(p) << "{\"traceEvents\":[\n"
                     << ev << "\n],\"metadata\":{\"layout\":\"" << l.spec() << "\"}}\n";
    const auto r = analyze({p.string()}, {});
    EXPECT_EQ(r.attribution.replicas, (std::vector<int>{0}));
    EXPECT_NE(r.attribution.scope.find("the what-if replays DP replica 0 of 2"), std::string::npos)
        << r.attribution.scope;
    EXPECT_NE(r.attribution.scope.find("replica 1 has no trace of 1 of its 2 stage and CP rank "
                                       "groups: pp1 cp0 (rank 3)"),
              std::string::npos)
        << r.attribution.scope;
    EXPECT_NE(r.attribution.scope.find("DP imbalance cannot be measured"), std::string::npos);
    ASSERT_EQ(r.attribution.attributed_steps, 2) << r.attribution.steps[0].skipped_reason;
    ASSERT_TRUE(r.attribution.dominant.has_value());
    EXPECT_EQ(*r.attribution.dominant, cause::pp_packing);
    const auto& mbs = r.attribution.steps[0].causes[static_cast<int>(cause::pp_packing)].involved;
    ASSERT_FALSE(mbs.empty());
    EXPECT_EQ(mbs[0].what, "dp0 micro-batch 2");
    // The breakdown and stragglers still cover rank 2 of the incomplete replica.
    EXPECT_EQ(r.breakdown[0].ranks.size(), 3u);
}

// Files that name no rank (no distributedInfo.rank, hosts in the names): --rank-map's file rules.
TEST(PartialJobs, RankMapTellsKinetoFilesByName) {
    temp_dir dir;
    std::vector<std::string> paths;
    for (const auto& [host, gpu] : std::vector<std::pair<int, int>>{{3, 1}, {9, 6}}) {
        const auto p = dir / fmt::format("node{}-gpu{}.pt.trace.json", host, gpu);
        std::ofstream(p) << kineto_file(-1, {rank_kernels(0, 1.0)});
        paths.push_back(p.string());
    }
    analysis_options a;
    a.ingest.rank_map = "file:node(\\d+)-gpu(\\d+) -> dp=$1, tp=$2";
    a.ingest.job_layout = runtime::layout::parse("tp=8,dp=16");
    const auto r = analyze(paths, a);
    const auto& l = r.job.job_layout;
    EXPECT_TRUE(r.job.ranks[static_cast<std::size_t>(l.rank_of({1, 0, 0, 3}))].present);
    EXPECT_TRUE(r.job.ranks[static_cast<std::size_t>(l.rank_of({6, 0, 0, 9}))].present);
    int present = 0;
    for (const auto& rt : r.job.ranks)
        present += rt.present ? 1 : 0;
    EXPECT_EQ(present, 2);
}

} // namespace
} // namespace wlb::profiler
