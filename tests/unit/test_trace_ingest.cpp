// Ingestion of PyTorch profiler (Kineto) traces and Megatron-style timer timelines, on files the
// tests write in those formats: both NCCL kernel namings, gzip, ranks named by metadata rather
// than file names, missing ranks, skewed clocks, truncated files; and the timer timeline of a
// simulated pipeline with a heavy micro-batch, which the attribution must name.
#include "base/error.hpp"
#include "profiler/analysis/analysis.hpp"
#include "profiler/ingest/kernel_names.hpp"
#include "runtime/sim/sim_trace.hpp"
#include "runtime/sim/simulator.hpp"
#include "support/cli_runner.hpp"
#include "support/fake_duration_model.hpp"

#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <gtest/gtest.h>
#include <map>
#include <set>
#include <zlib.h>

namespace wlb::profiler {
namespace {

namespace fs = std::filesystem;
using wlb::test::temp_dir;

std::string us(std::int64_t ns) {
    return fmt::format("{}.{:03d}", ns / 1000, ns % 1000);
}

void write_file(const fs::path& p, const std::string& text, bool gzip = false) {
    if (!gzip) {
        std::ofstream(p, std::ios::binary) << text;
        return;
    }
    gzFile f = gzopen(p.string().c_str(), "wb");
    ASSERT_NE(f, nullptr);
    gzwrite(f, text.data(), static_cast<unsigned>(text.size()));
    gzclose(f);
}

// One rank of a tp=2, dp=2 job: per step a GEMM, a flash-attention kernel and an element-wise
// kernel on stream 7, then a TP all-reduce over {0,1} or {2,3} and a DP all-reduce over {0,2}
// or {1,3} on stream 20. Rank 3 runs its non-attention kernels 1.3x slower; collectives end when
// the last member arrives plus their transfer time, as NCCL does. `skew_ns` is added to every
// timestamp of the file (its host clock is off).
struct kineto_job {
    static constexpr int steps = 3;
    static constexpr std::int64_t gemm_ns = 1'000'000, flash_ns = 800'000, elem_ns = 100'000;
    static constexpr std::int64_t tp_ns = 200'000, dp_ns = 300'000, step_ns = 5'000'000;

    static double slow(int rank) { return rank == 3 ? 1.3 : 1.0; }
    static std::int64_t compute_ns(int rank) {
        return static_cast<std::int64_t>(std::llround((gemm_ns + elem_ns) * slow(rank))) + flash_ns;
    }

    // The file of `rank`: old NCCL names and record_param_comms metadata for ranks 0 and 1, the
    // current names with the metadata on the kernel for ranks 2 and 3.
    static std::string file(int rank, std::int64_t skew_ns) {
        const bool current = rank >= 2;
        std::vector<std::string> ev;
        std::int64_t corr = 1;
        const int tp_peer = rank ^ 1, dp_peer = rank ^ 2;
        const std::string tp_ranks = rank < 2 ? "[0, 1]" : "[2, 3]";
        const std::string dp_ranks = rank % 2 == 0 ? "[0, 2]" : "[1, 3]";
        auto kernel = [&](const std::string& name, std::int64_t ts, std::int64_t dur, int stream,
                          const std::string& extra) {
            const std::int64_t c = corr++;
            // The launch 10 us before the kernel, on the CPU thread 100.
            ev.push_back(fmt::format(
                R"({{"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "pid": 1, "tid": 100, "ts": {}, "dur": 5.000, "args": {{"correlation": {}, "External id": {}}}}})",
                us(ts - 10'000 + skew_ns), c, c));
            ev.push_back(fmt::format(
                R"({{"ph": "X", "cat": "kernel", "name": "{}", "pid": 0, "tid": {}, "ts": {}, "dur": {}, "args": {{"device": 0, "stream": {}, "correlation": {}{}}}}})",
                name, stream, us(ts + skew_ns), us(dur), stream, c, extra));
            return ts - 10'000;
        };
        auto comm_meta = [&](const std::string& coll, const std::string& ranks, int size,
                             const std::string& pg) {
            return fmt::format(
                R"("Collective name": "{}", "In msg nelems": 1048576, "Out msg nelems": 1048576, "dtype": "BFloat16", "Group size": {}, "Process Group Name": "{}", "Process Group Description": "undescribed", "Process Group Ranks": "{}")",
                coll, size, pg, ranks);
        };
        for (int s = 0; s < steps; ++s) {
            const std::int64_t t0 = 1'000'000 + s * step_ns;
            ev.push_back(fmt::format(
                R"({{"ph": "X", "cat": "user_annotation", "name": "ProfilerStep#{}", "pid": 1, "tid": 100, "ts": {}, "dur": {}, "args": {{}}}})",
                s + 10, us(t0 - 50'000 + skew_ns), us(step_ns - 100'000)));
            std::int64_t t = t0;
            const auto gemm = static_cast<std::int64_t>(std::llround(gemm_ns * slow(rank)));
            const auto elem = static_cast<std::int64_t>(std::llround(elem_ns * slow(rank)));
            kernel("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64", t, gemm, 7, "");
            t += gemm;
            kernel("void flash_fwd_kernel<Flash_fwd_kernel_traits<128, 128, 64, 4>>", t, flash_ns,
                   7, "");
            t += flash_ns;
            kernel("void at::native::vectorized_elementwise_kernel<4, at::native::AddFunctor>", t,
                   elem, 7, "");
            t += elem;
            // TP all-reduce: every member arrives at its own compute end; ends together.
            const std::int64_t tp_end =
                t0 + std::max(compute_ns(rank), compute_ns(tp_peer)) + tp_ns;
            const std::string tp_name = current ? "ncclDevKernel_AllReduce_Sum_bf16_RING_LL"
                                                : "ncclKernel_AllReduce_RING_LL_Sum_bfloat16";
            const std::string tp_meta = comm_meta("allreduce", tp_ranks, 2, rank < 2 ? "1" : "2");
            const auto launch =
                kernel(tp_name, t, tp_end - t, 20, current ? ", " + tp_meta : std::string());
            if (!current)
                ev.push_back(fmt::format(
                    R"({{"ph": "X", "cat": "cpu_op", "name": "record_param_comms", "pid": 1, "tid": 100, "ts": {}, "dur": 20.000, "args": {{"External id": 7, {}}}}})",
                    us(launch - 5'000 + skew_ns), tp_meta));
            // DP all-reduce after the TP one, over the replicas.
            const auto dp_peer_tp_end =
                t0 + std::max(compute_ns(dp_peer), compute_ns(dp_peer ^ 1)) + tp_ns;
            const std::int64_t dp_end = std::max(tp_end, dp_peer_tp_end) + dp_ns;
            const std::string dp_meta =
                comm_meta("allreduce", dp_ranks, 2, rank % 2 == 0 ? "3" : "4");
            const auto dl = kernel(tp_name, tp_end, dp_end - tp_end, 20,
                                   current ? ", " + dp_meta : std::string());
            if (!current)
                ev.push_back(fmt::format(
                    R"({{"ph": "X", "cat": "cpu_op", "name": "record_param_comms", "pid": 1, "tid": 100, "ts": {}, "dur": 20.000, "args": {{"External id": 8, {}}}}})",
                    us(dl - 5'000 + skew_ns), dp_meta));
        }
        std::string body = fmt::format(
            "{{\n  \"schemaVersion\": 1,\n  \"deviceProperties\": [],\n  \"distributedInfo\": "
            "{{\"backend\": \"nccl\", \"rank\": {}, \"world_size\": 4}},\n  \"traceEvents\": [\n",
            rank);
        for (std::size_t i = 0; i < ev.size(); ++i)
            body += "  " + ev[i] + (i + 1 < ev.size() ? ",\n" : "\n");
        body +=
            "  ],\n  \"traceName\": \"test\",\n  \"baseTimeNanoseconds\": 1700000000000000000\n}\n";
        return body;
    }
};

// Files named by host, not by rank (the ranks come from distributedInfo), in an order that is
// not the ranks' order; rank 1 gzip-compressed; rank 2's clock 5 ms ahead.
std::vector<std::string> write_kineto_job(const temp_dir& dir, int skip_rank = -1) {
    const std::vector<std::pair<int, std::string>> names = {{2, "host-a.pt.trace.json"},
                                                            {0, "host-b.pt.trace.json"},
                                                            {3, "host-c.pt.trace.json"},
                                                            {1, "host-d.pt.trace.json.gz"}};
    std::vector<std::string> paths;
    for (const auto& [rank, name] : names) {
        if (rank == skip_rank)
            continue;
        const auto p = dir / name;
        write_file(p, kineto_job::file(rank, rank == 2 ? 5'000'000 : 0), rank == 1);
        paths.push_back(p.string());
    }
    return paths;
}

ingest_options tp2dp2() {
    ingest_options o;
    o.job_layout = runtime::layout::parse("tp=2,cp=1,pp=1,dp=2");
    return o;
}

bool has_warning(const job_trace& job, std::string_view part) {
    for (const auto& w : job.warnings)
        if ((w.where + ": " + w.message).find(part) != std::string::npos)
            return true;
    return false;
}

TEST(KernelNames, BothNcclNamingsAttentionAndGemms) {
    EXPECT_EQ(classify_kernel("ncclKernel_AllReduce_RING_LL_Sum_bfloat16").op, nccl_op::all_reduce);
    EXPECT_EQ(classify_kernel("ncclDevKernel_AllGather_RING_LL").op, nccl_op::all_gather);
    EXPECT_EQ(classify_kernel("ncclDevKernel_ReduceScatter_Sum_f32_RING_SIMPLE").op,
              nccl_op::reduce_scatter);
    EXPECT_EQ(classify_kernel("ncclDevKernel_SendRecv").op, nccl_op::send_recv);
    EXPECT_EQ(classify_kernel("ncclKernel_SendRecv_RING_SIMPLE_Sum_int8_t").op, nccl_op::send_recv);
    EXPECT_EQ(classify_kernel("ncclDevKernel_Generic_4").kind, kernel_kind::nccl);
    for (const char* a :
         {"void flash_fwd_kernel<Flash_fwd_kernel_traits<128>>", "flash::FlashAttnFwdSm90<...>",
          "cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16",
          "triton_tem_fused_flex_attention_0", "fmha_cutlassF_bf16_aligned_64x128",
          "void transformer_engine::fused_attn::cudnn_fused_attn_fwd"})
        EXPECT_EQ(classify_kernel(a).kind, kernel_kind::attention) << a;
    for (const char* g : {"sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n", "nvjet_tst_128x256_64x4_1x2",
                          "ampere_bf16_s16816gemm_bf16_128x128_ldg8", "cutlass_80_tensorop_gemm",
                          "triton_tem_fused_mm_0", "Cijk_Ailk_Bljk_BBS_BH"})
        EXPECT_EQ(classify_kernel(g).kind, kernel_kind::linear) << g;
    EXPECT_EQ(classify_kernel("void at::native::vectorized_elementwise_kernel<4>").kind,
              kernel_kind::other);
    EXPECT_EQ(nccl_op_from_collective_name("_reduce_scatter_base"), nccl_op::reduce_scatter);
}

TEST(KinetoIngest, RanksFromMetadataGzipBothNcclNamingsAndSkewedClocks) {
    temp_dir dir;
    const auto paths = write_kineto_job(dir);
    const auto r = analyze(paths, {tp2dp2(), false, {}});
    const auto& job = r.job;
    EXPECT_EQ(job.format, "kineto");
    ASSERT_EQ(job.ranks.size(), 4u);
    for (int k = 0; k < 4; ++k) {
        ASSERT_TRUE(job.ranks[static_cast<std::size_t>(k)].present) << k;
        EXPECT_NE(job.ranks[static_cast<std::size_t>(k)].file.find(k == 1 ? ".gz" : "host-"),
                  std::string::npos);
    }
    EXPECT_EQ(job.steps, (std::vector<std::int64_t>{10, 11, 12}));
    // Every collective of both namings found, on the lane of its group.
    for (int k = 0; k < 4; ++k) {
        int tp = 0, dp = 0;
        for (const auto& e : job.ranks[static_cast<std::size_t>(k)].events) {
            if (e.kind != runtime::event_kind::collective)
                continue;
            EXPECT_GT(e.bytes, 0.0);
            tp += e.where == runtime::lane::tp ? 1 : 0;
            dp += e.where == runtime::lane::dp ? 1 : 0;
        }
        EXPECT_EQ(tp, kineto_job::steps) << "rank " << k;
        EXPECT_EQ(dp, kineto_job::steps) << "rank " << k;
    }
    // Clocks: rank 2's 5 ms skew recovered exactly from the collective ends.
    EXPECT_EQ(job.clock.method, "collective ends");
    EXPECT_EQ(job.clock.offset_ns[2] - job.clock.offset_ns[0], -5'000'000);
    EXPECT_EQ(job.clock.residual_median_ns, 0);
    // Breakdown: compute classes as written; the TP all-reduce exposed.
    ASSERT_EQ(r.breakdown.size(), 3u);
    for (const auto& b : r.breakdown) {
        ASSERT_EQ(b.ranks.size(), 4u);
        for (const auto& rb : b.ranks) {
            EXPECT_NEAR(rb.attention_s, 800e-6, 1e-9);
            EXPECT_NEAR(rb.linear_s, 1000e-6 * kineto_job::slow(rb.rank), 1e-9);
            EXPECT_NEAR(rb.other_s, 100e-6 * kineto_job::slow(rb.rank), 1e-9);
            const auto& tp = rb.comm[static_cast<std::size_t>(runtime::lane::tp)];
            EXPECT_GT(tp.total_s, 0.0);
            EXPECT_NEAR(tp.exposed_s, tp.total_s, 1e-12);
        }
    }
    // Stragglers: rank 3 is 1.3x on the same kernels and arrives last at its collectives.
    double worst = 0.0;
    int who = -1;
    for (const auto& s : r.stragglers.speed)
        if (s.relative_time > worst) {
            worst = s.relative_time;
            who = s.rank;
        }
    EXPECT_EQ(who, 3);
    EXPECT_NEAR(worst, 1.3, 1e-6);
    // Rank 3 is last at its TP and DP all-reduces; rank 2 (waiting for rank 3 in TP) is last at
    // its DP all-reduce with rank 0.
    for (const auto& a : r.stragglers.arrivals)
        EXPECT_EQ(a.last_arrivals, a.rank == 3   ? 2 * kineto_job::steps
                                   : a.rank == 2 ? kineto_job::steps
                                                 : 0)
            << a.rank;
    // No micro-batch structure in plain Kineto: the attribution says so instead of guessing.
    ASSERT_FALSE(r.attribution.steps.empty());
    EXPECT_FALSE(r.attribution.steps[0].attributed);
    EXPECT_NE(r.attribution.steps[0].skipped_reason.find("micro-batch"), std::string::npos);
}

TEST(KinetoIngest, MissingRankAndTruncatedFilesWarnAndTheRestIsAnalysed) {
    temp_dir dir;
    auto paths = write_kineto_job(dir, /*skip_rank=*/3);
    // Cut rank 0's plain file inside its last step, and rank 1's gzip stream short.
    const auto p0 = dir / "host-b.pt.trace.json";
    std::string text = wlb::test::read_text(p0);
    const std::size_t cut = text.rfind("ProfilerStep#12") + 400;
    write_file(p0, text.substr(0, cut));
    const auto p1 = dir / "host-d.pt.trace.json.gz";
    std::string gz = wlb::test::read_text(p1);
    write_file(p1, gz.substr(0, gz.size() * 2 / 3));
    const auto r = analyze(paths, {tp2dp2(), false, {}});
    const auto& job = r.job;
    EXPECT_TRUE(has_warning(job, "ranks 3")) << "missing rank 3 named";
    EXPECT_TRUE(has_warning(job, "host-b.pt.trace.json:byte"));
    EXPECT_TRUE(has_warning(job, "host-d.pt.trace.json.gz"));
    EXPECT_TRUE(job.ranks[0].present);
    EXPECT_TRUE(job.ranks[0].truncated);
    EXPECT_FALSE(job.ranks[3].present);
    // Rank 0 keeps its complete steps; its incomplete last step is left out.
    std::set<std::int64_t> steps0;
    for (const auto& e : job.ranks[0].events)
        steps0.insert(e.step);
    EXPECT_TRUE(steps0.count(10) && steps0.count(11));
    EXPECT_FALSE(steps0.count(12));
    // The analysis goes on with what is sound.
    ASSERT_FALSE(r.breakdown.empty());
    EXPECT_EQ(r.breakdown[0].ranks.size(), job.ranks[1].events.empty() ? 2u : 3u);
}

TEST(KinetoIngest, UserClockOffsetsAndBadFiles) {
    temp_dir dir;
    const auto paths = write_kineto_job(dir);
    auto o = tp2dp2();
    o.clock = parse_clock_option("2=-5ms");
    const auto job = ingest(paths, o);
    EXPECT_EQ(job.clock.method, "given offsets");
    EXPECT_EQ(job.clock.residual_median_ns, 0); // the given offset undoes the skew
    EXPECT_THROW(parse_clock_option("2=-5parsecs"), wlb::usage_error);
    EXPECT_THROW(parse_clock_option("x=5"), wlb::usage_error);
    const auto bad = dir / "bad.json";
    write_file(bad, "this is not json at all");
    EXPECT_THROW(ingest({bad.string()}, o), wlb::input_error);
}

// --- timer timelines ----------------------------------------------------------------------------

// A pp=2, dp=2 pipeline simulated with micro-batch 2 of each replica made 1.8x heavier: every
// operation of every rank with the Megatron timer that measures it.
struct timed_op {
    int rank = 0;
    std::string timer;
    std::int64_t start_ns = 0, end_ns = 0;
    int step = 0, micro_batch = -1;
};

std::vector<timed_op> simulated_pipeline(int steps, std::int64_t skew_pp1_ns) {
    const auto l = runtime::layout::parse("tp=1,cp=1,pp=2,dp=2");
    wlb::test::fake_duration_model model;
    model.layers = 4;
    model.p2p_seconds_each = 2e-4;
    model.collective_seconds_each = 5e-4;
    model.optimizer_seconds_each = 1e-3;
    model.layer_params = 1e6;
    std::vector<timed_op> out;
    std::int64_t offset = 0;
    for (int s = 0; s < steps; ++s) {
        const auto batch = wlb::test::make_step(2, 1, 4, [](int, int) { return 4096; });
        const auto plan = runtime::build_step_plan(l, batch, model, runtime::plan_options{});
        const auto res = runtime::simulate(plan, {runtime::parse_fault("heavy-mb=2:1.8")});
        for (std::size_t i = 0; i < plan.ops.size(); ++i) {
            const auto& op = plan.ops[i];
            const bool fwd = op.ph == runtime::phase::fwd;
            timed_op t;
            t.rank = plan.units[static_cast<std::size_t>(op.unit)].rank;
            switch (op.kind) {
            case runtime::op_kind::layers:
                t.timer = fwd ? "forward-compute" : "backward-compute";
                break;
            case runtime::op_kind::send:
                t.timer = fwd ? "forward-send" : "backward-send";
                break;
            case runtime::op_kind::recv:
                t.timer = fwd ? "forward-recv" : "backward-recv";
                break;
            case runtime::op_kind::collective:
                t.timer = "grads-reduce-scatter";
                break;
            case runtime::op_kind::compute:
                // The output layer (zero here) is inside forward-compute in Megatron.
                t.timer = op.ph == runtime::phase::optimizer ? "optimizer" : "";
                break;
            }
            if (t.timer.empty())
                continue;
            // Stage 1's hosts have their clock skew_pp1_ns ahead.
            const std::int64_t skew = l.coords_of(t.rank).pp == 1 ? skew_pp1_ns : 0;
            t.start_ns = offset + skew + std::llround(res.start_seconds[i] * 1e9);
            t.end_ns = offset + skew + std::llround(res.end_seconds[i] * 1e9);
            t.step = s;
            t.micro_batch = op.micro_batch;
            out.push_back(t);
        }
        offset += std::llround(res.step_seconds * 1e9) + 1'000'000;
    }
    return out;
}

// The pipeline as a Megatron-style timer timeline: one process per rank named with its
// coordinates, one X (or, for the optimizer, B/E) event per timer with step and micro-batch ids.
std::string timer_timeline(bool with_steps, bool with_mb, int steps, std::int64_t skew_pp1_ns = 0) {
    const auto l = runtime::layout::parse("tp=1,cp=1,pp=2,dp=2");
    std::vector<std::string> ev;
    for (int r = 0; r < l.world_size(); ++r) {
        const auto c = l.coords_of(r);
        ev.push_back(fmt::format(
            R"({{"ph":"M","pid":{},"name":"process_name","args":{{"name":"rank {} tp{} cp{} pp{} dp{}"}}}})",
            r, r, c.tp, c.cp, c.pp, c.dp));
    }
    for (const auto& t : simulated_pipeline(steps, skew_pp1_ns)) {
        std::string args = with_steps ? fmt::format(R"("step":{})", t.step) : "";
        if (with_mb && t.micro_batch >= 0)
            args += fmt::format(R"({}"micro_batch":{})", args.empty() ? "" : ",", t.micro_batch);
        if (t.timer == "optimizer") {
            // As a timer's start / stop pair.
            ev.push_back(fmt::format(
                R"({{"ph":"B","pid":{},"tid":0,"name":"optimizer","ts":{},"args":{{{}}}}})", t.rank,
                us(t.start_ns), args));
            ev.push_back(fmt::format(R"({{"ph":"E","pid":{},"tid":0,"name":"optimizer","ts":{}}})",
                                     t.rank, us(t.end_ns)));
            continue;
        }
        ev.push_back(fmt::format(
            R"({{"ph":"X","pid":{},"tid":{},"name":"{}","ts":{},"dur":{},"args":{{{}}}}})", t.rank,
            t.timer == "grads-reduce-scatter" ? 1 : 0, t.timer, us(t.start_ns),
            us(t.end_ns - t.start_ns), args));
    }
    std::string body = "{\"traceEvents\":[\n";
    for (std::size_t i = 0; i < ev.size(); ++i)
        body += ev[i] + (i + 1 < ev.size() ? ",\n" : "\n");
    return body + "]}\n";
}

// The same pipeline as PyTorch profiler traces, one per rank: each timer a record_function
// range (gpu_user_annotation) with the kernel it ran inside: a GEMM for compute, a NCCL
// SendRecv for the transfers, a ReduceScatter for the gradients, an element-wise kernel for
// the optimizer; no micro-batch ids anywhere (the ranges' order gives them).
std::vector<std::string> annotated_kineto(const temp_dir& dir, int steps) {
    const auto l = runtime::layout::parse("tp=1,cp=1,pp=2,dp=2");
    const auto ops = simulated_pipeline(steps, 0);
    std::vector<std::string> paths;
    for (int r = 0; r < l.world_size(); ++r) {
        const auto c = l.coords_of(r);
        const auto pipe = l.group_of(r, runtime::axis::pp);
        const auto dpg = l.group_of(r, runtime::axis::dp);
        std::vector<std::string> ev;
        std::map<int, std::pair<std::int64_t, std::int64_t>> window;
        for (const auto& t : ops) {
            if (t.rank != r)
                continue;
            auto [it, fresh] = window.try_emplace(t.step, t.start_ns, t.end_ns);
            it->second.first = std::min(it->second.first, t.start_ns);
            it->second.second = std::max(it->second.second, t.end_ns);
            ev.push_back(fmt::format(
                R"({{"ph": "X", "cat": "gpu_user_annotation", "name": "{}", "pid": 0, "tid": 7, "ts": {}, "dur": {}}})",
                t.timer, us(t.start_ns), us(t.end_ns - t.start_ns)));
            std::string kernel = "sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n", meta;
            int stream = 7;
            if (t.timer.find("send") != std::string::npos ||
                t.timer.find("recv") != std::string::npos) {
                kernel = "ncclDevKernel_SendRecv";
                stream = 21;
                meta = fmt::format(
                    R"(, "Collective name": "{}", "In msg nelems": 4096, "Out msg nelems": 4096, "dtype": "BFloat16", "Group size": 2, "Process Group Name": "pp{}", "Process Group Ranks": "[{}, {}]")",
                    t.timer.find("send") != std::string::npos ? "send" : "recv", c.dp, pipe[0],
                    pipe[1]);
            } else if (t.timer == "grads-reduce-scatter") {
                kernel = "ncclDevKernel_ReduceScatter_Sum_bf16_RING_LL";
                stream = 20;
                meta = fmt::format(
                    R"(, "Collective name": "_reduce_scatter_base", "In msg nelems": 1048576, "Out msg nelems": 524288, "dtype": "BFloat16", "Group size": 2, "Process Group Name": "dp{}", "Process Group Ranks": "[{}, {}]")",
                    c.pp, dpg[0], dpg[1]);
            } else if (t.timer == "optimizer") {
                kernel = "void at::native::vectorized_elementwise_kernel<4, AdamFunctor>";
            }
            ev.push_back(fmt::format(
                R"({{"ph": "X", "cat": "kernel", "name": "{}", "pid": 0, "tid": {}, "ts": {}, "dur": {}, "args": {{"stream": {}, "correlation": -1{}}}}})",
                kernel, stream, us(t.start_ns), us(t.end_ns - t.start_ns), stream, meta));
        }
        for (const auto& [step, w] : window)
            ev.push_back(fmt::format(
                R"({{"ph": "X", "cat": "gpu_user_annotation", "name": "ProfilerStep#{}", "pid": 0, "tid": 7, "ts": {}, "dur": {}}})",
                step, us(w.first), us(w.second - w.first)));
        std::string body = fmt::format(
            "{{\"distributedInfo\": {{\"rank\": {}, \"world_size\": 4}}, \"traceEvents\": [\n", r);
        for (std::size_t i = 0; i < ev.size(); ++i)
            body += ev[i] + (i + 1 < ev.size() ? ",\n" : "\n");
        body += "]}\n";
        const auto p = dir / fmt::format("rank{}.json", r);
        write_file(p, body);
        paths.push_back(p.string());
    }
    return paths;
}

TEST(TimerIngest, CoordinatesFromMetadataSkewedStagesAndTheHeavyMicroBatchIsNamed) {
    temp_dir dir;
    const auto p = dir / "megatron_timers.json";
    write_file(p, timer_timeline(true, true, 2, 3'000'000));
    const auto r = analyze({p.string()}, {});
    const auto& job = r.job;
    EXPECT_EQ(job.format, "megatron");
    EXPECT_EQ(job.job_layout.spec(), "tp=1,cp=1,pp=2,dp=2");
    EXPECT_NE(job.layout_source.find("coordinates"), std::string::npos);
    EXPECT_EQ(job.steps.size(), 2u);
    // The stages share no collective: their clocks are joined through the pipeline transfers.
    EXPECT_EQ(job.clock.method, "collective ends");
    EXPECT_GE(job.clock.p2p_links, 1);
    EXPECT_EQ(job.clock.offset_ns[1] - job.clock.offset_ns[0], -3'000'000);
    EXPECT_EQ(job.clock.offset_ns[3] - job.clock.offset_ns[2], -3'000'000);
    EXPECT_TRUE(job.clock.unaligned_ranks.empty());
    ASSERT_EQ(r.attribution.attributed_steps, 2) << r.attribution.steps[0].skipped_reason;
    ASSERT_TRUE(r.attribution.dominant.has_value());
    EXPECT_EQ(*r.attribution.dominant, cause::pp_packing);
    // The replay of the measured timers reproduces the measured step.
    for (const auto& s : r.attribution.steps)
        EXPECT_NEAR(s.replay_s, s.measured_s, 0.02 * s.measured_s);
    const auto& involved =
        r.attribution.steps[0].causes[static_cast<int>(cause::pp_packing)].involved;
    ASSERT_FALSE(involved.empty());
    EXPECT_NE(involved[0].what.find("micro-batch 2"), std::string::npos) << involved[0].what;
    // Timers time a pass over a chunk, not layers: the model's partition is unknown.
    EXPECT_EQ(r.attribution.partition, "");
    EXPECT_FALSE(r.attribution.partition_is_closest);
}

TEST(TimerIngest, MissingStepAndMicroBatchIdsAreCountedWithAWarning) {
    temp_dir dir;
    const auto p = dir / "rank_timers.json.gz";
    write_file(p, timer_timeline(false, false, 2), true);
    const auto r = analyze({p.string()}, {});
    EXPECT_EQ(r.job.steps.size(), 2u);
    EXPECT_TRUE(has_warning(r.job, "counted by optimizer timers"));
    EXPECT_TRUE(has_warning(r.job, "numbered in order"));
    EXPECT_EQ(r.attribution.attributed_steps, 2) << r.attribution.steps[0].skipped_reason;
    ASSERT_TRUE(r.attribution.dominant.has_value());
    EXPECT_EQ(*r.attribution.dominant, cause::pp_packing);
}

} // namespace
} // namespace wlb::profiler

// The CPU runtime's GEMM ops (docs/cpu-runtime.md) are linear work, as the simulator's
// "linear fwd/bwd" are; norms and the optimizer are other compute.
TEST(WlbtuneIngest, CpuRuntimeGemmNamesAreLinearWork) {
    using wlb::profiler::wlbtune_work_of;
    using wlb::profiler::work_class;
    EXPECT_EQ(wlbtune_work_of("attention fwd"), work_class::attention);
    EXPECT_EQ(wlbtune_work_of("linear bwd"), work_class::linear);
    EXPECT_EQ(wlbtune_work_of("qkv proj fwd"), work_class::linear);
    EXPECT_EQ(wlbtune_work_of("out proj bwd"), work_class::linear);
    EXPECT_EQ(wlbtune_work_of("mlp fwd"), work_class::linear);
    EXPECT_EQ(wlbtune_work_of("mlp norm fwd"), work_class::other);
    EXPECT_EQ(wlbtune_work_of("optimizer step"), work_class::other);
}
namespace wlb::profiler {
namespace {

TEST(KinetoIngest, TimerNamedAnnotationsGiveMicroBatchesAndTheAttribution) {
    temp_dir dir;
    const auto paths = annotated_kineto(dir, 2);
    ingest_options o;
    o.job_layout = runtime::layout::parse("tp=1,cp=1,pp=2,dp=2");
    const auto r = analyze(paths, {o, false, {}});
    const auto& job = r.job;
    EXPECT_EQ(job.format, "kineto");
    EXPECT_FALSE(job.per_layer_events);
    // The transfers are on the pp lane as sends and receives, the gradients on the dp lane.
    int sends = 0, recvs = 0, grads = 0;
    for (const auto& e : job.ranks[0].events) {
        sends += e.kind == runtime::event_kind::send && e.where == runtime::lane::pp ? 1 : 0;
        recvs += e.kind == runtime::event_kind::recv && e.where == runtime::lane::pp ? 1 : 0;
        grads += e.kind == runtime::event_kind::collective && e.where == runtime::lane::dp ? 1 : 0;
    }
    EXPECT_EQ(sends, 2 * 4) << "one forward send per micro-batch and step on stage 0";
    EXPECT_EQ(recvs, 2 * 4);
    EXPECT_EQ(grads, 2);
    ASSERT_EQ(r.attribution.attributed_steps, 2) << r.attribution.steps[0].skipped_reason;
    for (const auto& s : r.attribution.steps)
        EXPECT_NEAR(s.replay_s, s.measured_s, 0.02 * s.measured_s);
    ASSERT_TRUE(r.attribution.dominant.has_value());
    EXPECT_EQ(*r.attribution.dominant, cause::pp_packing);
}

} // namespace
} // namespace wlb::profiler

// wlbtune trace directories are read line by line with simdjson: the events equal what
// runtime::trace_reader (nlohmann) reads; a malformed line names the file and line; a last line
// cut short (a rank still writing) leaves that rank's last step out with a warning.
namespace wlb::profiler {
namespace {

runtime::trace small_trace() {
    test::fake_duration_model m;
    m.attention_seconds_per_pair = 1e-9;
    m.collective_seconds_each = 1e-4;
    m.p2p_seconds_each = 1e-4;
    m.layer_params = 1e6;
    const auto l = runtime::layout::parse("tp=2,cp=2,pp=2,dp=1");
    runtime::trace t;
    t.meta.source = "simulated";
    t.meta.job_layout = l;
    t.meta.steps = 2;
    t.meta.tp_replicated = true;
    std::int64_t offset = 0, flow = 0;
    for (int s = 0; s < 2; ++s) {
        auto step =
            test::make_step(1, 2, 4, [](int, int mb) { return std::int64_t{512} * (mb + 1); });
        step.step = s;
        const auto plan = runtime::build_step_plan(l, step, m);
        const auto r = runtime::simulate(plan);
        flow = runtime::append_step_trace(t, plan, r, offset, flow);
        offset += std::llround(r.step_seconds * 1e9);
    }
    return t;
}

std::vector<std::string> lines_of(const fs::path& p) {
    std::ifstream in(p);
    std::vector<std::string> out;
    for (std::string line; std::getline(in, line);)
        out.push_back(line);
    return out;
}

void write_lines(const fs::path& p, const std::vector<std::string>& lines, bool last_newline) {
    std::string text;
    for (std::size_t i = 0; i < lines.size(); ++i)
        text += lines[i] + (i + 1 < lines.size() || last_newline ? "\n" : "");
    std::ofstream(p, std::ios::binary) << text;
}

TEST(WlbtuneIngest, SimdjsonLinesEqualTheReferenceReaderAndBadLinesAreNamed) {
    temp_dir dir;
    const auto t = small_trace();
    runtime::write_trace_dir(dir.path().string(), t);
    const auto fast = ingest({dir.path().string()}, {});
    const auto ref = ingest_trace(runtime::trace_reader(dir.path().string()).read_all(), {});
    ASSERT_EQ(fast.ranks.size(), ref.ranks.size());
    for (std::size_t r = 0; r < ref.ranks.size(); ++r) {
        ASSERT_EQ(fast.ranks[r].events.size(), ref.ranks[r].events.size()) << "rank " << r;
        for (std::size_t i = 0; i < ref.ranks[r].events.size(); ++i) {
            const auto& a = fast.ranks[r].events[i];
            const auto& b = ref.ranks[r].events[i];
            EXPECT_EQ(fast.names[a.name], ref.names[b.name]);
            EXPECT_EQ(a.start_ns, b.start_ns);
            EXPECT_EQ(a.dur_ns, b.dur_ns);
            EXPECT_EQ(a.bytes, b.bytes);
            EXPECT_EQ(a.step, b.step);
            EXPECT_EQ(a.micro_batch, b.micro_batch);
            EXPECT_EQ(a.virtual_stage, b.virtual_stage);
            EXPECT_EQ(a.where, b.where);
            EXPECT_EQ(a.kind, b.kind);
            EXPECT_EQ(a.ph, b.ph);
            EXPECT_EQ(a.work, b.work);
            EXPECT_EQ(a.group, b.group);
        }
    }

    const auto file = dir / "rank_00003.jsonl";
    const auto good = lines_of(file);
    ASSERT_GT(good.size(), 10u);
    auto expect_error = [&](std::vector<std::string> lines, const std::string& want) {
        write_lines(file, lines, true);
        try {
            (void)ingest({dir.path().string()}, {});
            ADD_FAILURE() << "accepted: " << want;
        } catch (const input_error& e) {
            EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
        }
    };
    auto bad = good;
    bad[4] = R"({"rank": 3, "lane": "compute"})";
    expect_error(bad, file.string() + ":5: event has no \"kind\"");
    bad = good;
    bad[6] = R"({"rank": 3, "lane": "disk", "kind": "compute"})";
    expect_error(bad, ":7: unknown lane \"disk\"");
    bad = good;
    bad[2] = good[2].substr(0, good[2].size() / 2);
    expect_error(bad, ":3: not JSON");
    bad = good;
    bad[1] = fast.ranks.empty() ? "" : lines_of(dir / "rank_00002.jsonl")[1];
    expect_error(bad, ":2: event of rank 2 in the file of rank 3");

    // The last line cut while the rank was writing: its last step is left out with a warning.
    auto cut = good;
    cut.back() = cut.back().substr(0, cut.back().size() / 2);
    write_lines(file, cut, false);
    const auto job = ingest({dir.path().string()}, {});
    EXPECT_TRUE(job.ranks[3].truncated);
    bool warned = false;
    for (const auto& w : job.warnings)
        warned = warned ||
                 (w.where == file.string() && w.message.find("ends early") != std::string::npos);
    EXPECT_TRUE(warned);
    for (const auto& e : job.ranks[3].events)
        EXPECT_NE(e.step, 1) << "the incomplete last step is left out";

    // The same ranks in a second directory: each is read once, the copies are named and left out.
    temp_dir copy;
    runtime::write_trace_dir(copy.path().string(), t);
    temp_dir other;
    runtime::write_trace_dir(other.path().string(), t);
    const auto both = ingest({copy.path().string(), other.path().string()}, {});
    int left_out = 0;
    for (const auto& w : both.warnings)
        left_out +=
            w.message.find("was already read from " + copy.path().string()) != std::string::npos &&
                    w.message.find("its file is left out") != std::string::npos
                ? 1
                : 0;
    EXPECT_EQ(left_out, 8) << "every rank of the second directory";
    EXPECT_EQ(both.ranks[0].file, (copy / "rank_00000.jsonl").string());
}

} // namespace
} // namespace wlb::profiler
