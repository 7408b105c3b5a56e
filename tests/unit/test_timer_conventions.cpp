// Rank conventions of timer timelines (issue #16), on files the tests write in each: a process
// per DP rank whose threads are "PP rank p, TP rank t, <lane>" (the export of Megatron-based
// stacks' timeline tools), coordinates spelled "tpA cpB ppC dpD" in thread names, names only
// --rank-map can place, only TP rank 0 recording, communication timers that carry a seq_id
// instead of a micro-batch, a combined send/receive, and timers outside the vocabulary. The
// 64-rank files are simulated with a fault injected (a slow worker, a slow stage, a heavy
// replica); the analysis must name it.
#include "base/error.hpp"
#include "profiler/analysis/analysis.hpp"
#include "profiler/ingest/rank_names.hpp"
#include "support/cli_runner.hpp"
#include "support/timer_timeline.hpp"

#include <fmt/format.h>
#include <fstream>
#include <gtest/gtest.h>
#include <map>

namespace wlb::profiler {
namespace {

namespace fs = std::filesystem;
using wlb::test::temp_dir;
using wlb::test::timed_op;

std::string us(std::int64_t ns) {
    return fmt::format("{}.{:03d}", ns / 1000, ns % 1000);
}

// A Chrome-trace timeline being written.
class timeline {
public:
    void process(std::int64_t pid, const std::string& name) {
        m_ev.push_back(fmt::format(
            R"({{"ph":"M","pid":{},"name":"process_name","args":{{"name":"{}"}}}})", pid, name));
    }
    void thread(std::int64_t pid, std::int64_t tid, const std::string& name) {
        m_ev.push_back(fmt::format(
            R"({{"ph":"M","pid":{},"tid":{},"name":"thread_name","args":{{"name":"{}"}}}})", pid,
            tid, name));
    }
    void timer(std::int64_t pid, std::int64_t tid, const std::string& name, std::int64_t start_ns,
               std::int64_t end_ns, const std::string& args) {
        m_ev.push_back(fmt::format(
            R"({{"ph":"X","pid":{},"tid":{},"name":"{}","ts":{},"dur":{},"args":{{{}}}}})", pid,
            tid, name, us(start_ns), us(end_ns - start_ns), args));
    }
    void write(const fs::path& p) const {
        std::string body = "{\"traceEvents\":[\n";
        for (std::size_t i = 0; i < m_ev.size(); ++i)
            body += m_ev[i] + (i + 1 < m_ev.size() ? ",\n" : "\n");
        std::ofstream(p) << body << "]}\n";
    }

private:
    std::vector<std::string> m_ev;
};

// step and micro-batch args; communication timers carry the micro-batch as seq_id.
std::string timer_args(const timed_op& t) {
    std::string a = fmt::format(R"("step":{})", t.step);
    if (t.micro_batch >= 0)
        a += fmt::format(R"(,"{}":{})", t.comm ? "seq_id" : "micro_batch", t.micro_batch);
    return a;
}

enum lane_thread { compute_thread = 0, pp_thread, tp_thread, dp_thread, misc_thread };
constexpr std::array<const char*, 5> lane_names = {"compute", "pp-comm", "tp-comm", "dp-comm",
                                                   "misc"};

// The convention of Megatron-based stacks' timeline tools: a process per DP rank, a thread per
// (PP rank, TP rank, lane). `tp_ranks`: the TP ranks that recorded (all, or only 0). Each step
// starts with a "gc" timer on the misc thread (outside the vocabulary).
void write_dp_processes(const std::vector<timed_op>& ops, const runtime::layout& l,
                        const fs::path& p, int tp_ranks) {
    timeline tl;
    auto tid_of = [&](int pp, int tp, int lane) {
        return (pp * l.tp() + tp) * 8 + lane;
    };
    for (int d = 0; d < l.dp(); ++d) {
        tl.process(1000 + d, fmt::format("DP rank {}", d));
        for (int pp = 0; pp < l.pp(); ++pp)
            for (int tp = 0; tp < tp_ranks; ++tp)
                for (int k = 0; k < 5; ++k)
                    tl.thread(1000 + d, tid_of(pp, tp, k),
                              fmt::format("PP rank {}, TP rank {}, {}", pp, tp, lane_names[k]));
    }
    std::map<std::pair<int, int>, std::int64_t> step_start; // (rank, step) -> first start
    for (const auto& t : ops) {
        const auto c = l.coords_of(t.rank);
        if (c.tp >= tp_ranks)
            continue;
        const int lane = !t.comm                             ? compute_thread
                         : t.timer == "grads-reduce-scatter" ? dp_thread
                                                             : pp_thread;
        tl.timer(1000 + c.dp, tid_of(c.pp, c.tp, lane), t.timer, t.start_ns, t.end_ns,
                 timer_args(t));
        auto [it, fresh] = step_start.try_emplace({t.rank, t.step}, t.start_ns);
        if (!fresh)
            it->second = std::min(it->second, t.start_ns);
    }
    for (const auto& [key, start] : step_start) {
        const auto c = l.coords_of(key.first);
        tl.timer(1000 + c.dp, tid_of(c.pp, c.tp, misc_thread), "gc", start, start + 30'000,
                 fmt::format(R"("step":{})", key.second));
    }
    tl.write(p);
}

const runtime::layout job64 = runtime::layout::parse("tp=2,cp=1,pp=4,dp=8");

analysis_result analyze_file(const fs::path& p, const ingest_options& o = {}) {
    analysis_options a;
    a.ingest = o;
    return analyze({p.string()}, a);
}

int count_warnings(const job_trace& job, std::string_view part) {
    int n = 0;
    for (const auto& w : job.warnings)
        n += (w.where + ": " + w.message).find(part) != std::string::npos ? 1 : 0;
    return n;
}

TEST(RankNames, BuiltInSpellings) {
    auto c = coords_in_name("PP rank 1, TP rank 0, compute");
    EXPECT_EQ(c.where.pp, 1);
    EXPECT_EQ(c.where.tp, 0);
    EXPECT_EQ(c.where.dp, -1);
    EXPECT_EQ(c.rank, -1) << "TP rank 0 is a coordinate, not the global rank";
    EXPECT_EQ(c.lane, runtime::lane::compute);
    c = coords_in_name("rank 5 tp1 cp0 pp1 dp0");
    EXPECT_EQ(c.rank, 5);
    EXPECT_EQ(c.where, (runtime::coords{1, 0, 1, 0}));
    c = coords_in_name("DP rank 3");
    EXPECT_EQ(c.where.dp, 3);
    EXPECT_EQ(c.rank, -1);
    c = coords_in_name("cp_rank=2 dp-rank: 7");
    EXPECT_EQ(c.where.cp, 2);
    EXPECT_EQ(c.where.dp, 7);
    EXPECT_EQ(coords_in_name("trainer Rank-12").rank, 12);
    EXPECT_EQ(coords_in_name("PP rank 0, TP rank 1, pp-comm").lane, runtime::lane::pp);
    EXPECT_EQ(coords_in_name("PP rank 0, TP rank 1, misc").lane, runtime::lane::host);
    const auto none = coords_in_name("python3 worker");
    EXPECT_EQ(none.rank, -1);
    EXPECT_FALSE(none.any_coords());
}

TEST(RankNames, RankMapRulesAndErrors) {
    const auto m = rank_map::parse(
        "process:^worker-(\\d+)$ -> dp=$1; thread:stage(\\d+)/gpu(\\d+) -> pp=$1, tp=$2-1;"
        " tid:^77$ -> rank=3");
    auto c = m.apply("worker-4", 10, "stage2/gpu1", 20, "f.json");
    EXPECT_EQ(c.where, (runtime::coords{0, -1, 2, 4}));
    EXPECT_EQ(c.rank, -1);
    EXPECT_EQ(m.apply("x", 1, "y", 77, "f.json").rank, 3);
    EXPECT_EQ(m.apply("x", 1, "y", 770, "f.json").rank, -1) << "ids match whole";
    EXPECT_TRUE(rank_map::parse("").empty());
    auto fails = [](std::string_view text, std::string_view want) {
        try {
            (void)rank_map::parse(text);
            ADD_FAILURE() << "accepted " << text;
        } catch (const usage_error& e) {
            EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
        }
    };
    fails("process worker -> dp=$1", "no ':'");
    fails("host:x -> dp=1", "unknown subject \"host\"");
    fails("process:x(\\d+) -> ep=$1", "unknown axis \"ep\"");
    fails("process:x(\\d+) -> dp=$2", "the pattern has 1 captures");
    fails("process:x( -> dp=1", "not a regular expression");
}

TEST(TimerConventions, ProcessPerDpRankWithPpTpThreadsNamesTheSlowWorker) {
    temp_dir dir;
    const auto p = dir / "timeline.json";
    write_dp_processes(
        wlb::test::simulated_timers(job64, 2, 8, {runtime::parse_fault("slow-rank=44:1.5")}), job64,
        p, job64.tp());
    const auto r = analyze_file(p);
    const auto& job = r.job;
    EXPECT_EQ(job.format, "megatron");
    EXPECT_EQ(job.job_layout.spec(), "tp=2,cp=1,pp=4,dp=8");
    EXPECT_NE(job.layout_source.find("process and thread names"), std::string::npos)
        << job.layout_source;
    int present = 0;
    for (const auto& rt : job.ranks)
        present += rt.present ? 1 : 0;
    EXPECT_EQ(present, 64);
    // Rank 44 is tp0 cp0 pp2 dp5: its events came from process "DP rank 5", thread "PP rank 2,
    // TP rank 0, ...".
    ASSERT_EQ(job.job_layout.coords_of(44), (runtime::coords{0, 0, 2, 5}));
    // Transfers carry seq_id, not micro_batch: their micro-batch is the seq_id, nothing inferred.
    EXPECT_EQ(count_warnings(job, "numbered in order"), 0);
    int recvs = 0;
    for (const auto& e : job.ranks[44].events)
        if (e.kind == runtime::event_kind::recv) {
            EXPECT_GE(e.micro_batch, 0);
            ++recvs;
        }
    EXPECT_GT(recvs, 0);
    // gc is outside the vocabulary: host time, one warning for the whole job.
    EXPECT_EQ(count_warnings(job, "\"gc\""), 1);
    EXPECT_EQ(count_warnings(job, "outside the Megatron timer vocabulary"), 1);
    ASSERT_EQ(r.attribution.attributed_steps, 2) << r.attribution.steps[0].skipped_reason;
    ASSERT_TRUE(r.attribution.dominant.has_value());
    EXPECT_EQ(*r.attribution.dominant, cause::slow_worker);
    const auto& workers =
        r.attribution.steps[0].causes[static_cast<int>(cause::slow_worker)].involved;
    ASSERT_FALSE(workers.empty());
    EXPECT_EQ(workers[0].rank, 44);
    // Its compute is 1.5x; a forward-compute timer also spans the pass's TP collectives, which
    // are not slower: the timed factor is less.
    EXPECT_GT(workers[0].factor, 1.25);
    EXPECT_LE(workers[0].factor, 1.5 + 1e-9);
    EXPECT_NE(workers[0].what.find("ranks 44-45"), std::string::npos) << workers[0].what;
}

TEST(TimerConventions, ProcessPerDpRankStageImbalanceIsStagePartitioning) {
    temp_dir dir;
    const auto p = dir / "timeline.json";
    write_dp_processes(
        wlb::test::simulated_timers(job64, 2, 8, {runtime::parse_fault("slow-stage=3:1.5")}), job64,
        p, job64.tp());
    const auto r = analyze_file(p);
    ASSERT_EQ(r.attribution.attributed_steps, 2) << r.attribution.steps[0].skipped_reason;
    ASSERT_TRUE(r.attribution.dominant.has_value());
    EXPECT_EQ(*r.attribution.dominant, cause::stage_partitioning);
    const auto& stages =
        r.attribution.steps[0].causes[static_cast<int>(cause::stage_partitioning)].involved;
    ASSERT_FALSE(stages.empty());
    EXPECT_EQ(stages[0].what, "stage 3");
    EXPECT_TRUE(
        r.attribution.steps[0].causes[static_cast<int>(cause::slow_worker)].involved.empty())
        << "a whole stage slow on every replica is not a slow worker";
}

TEST(TimerConventions, ProcessPerDpRankHeavyReplicaIsDataImbalance) {
    temp_dir dir;
    const auto p = dir / "timeline.json";
    write_dp_processes(
        wlb::test::simulated_timers(
            job64, 2, 8,
            {runtime::parse_fault("heavy-mb=0@5:1.6"), runtime::parse_fault("heavy-mb=1@5:1.6"),
             runtime::parse_fault("heavy-mb=2@5:1.6"), runtime::parse_fault("heavy-mb=3@5:1.6"),
             runtime::parse_fault("heavy-mb=4@5:1.6"), runtime::parse_fault("heavy-mb=5@5:1.6"),
             runtime::parse_fault("heavy-mb=6@5:1.6"), runtime::parse_fault("heavy-mb=7@5:1.6")}),
        job64, p, job64.tp());
    const auto r = analyze_file(p);
    ASSERT_EQ(r.attribution.attributed_steps, 2) << r.attribution.steps[0].skipped_reason;
    ASSERT_TRUE(r.attribution.dominant.has_value());
    EXPECT_EQ(*r.attribution.dominant, cause::dp_imbalance);
    const auto& replicas =
        r.attribution.steps[0].causes[static_cast<int>(cause::dp_imbalance)].involved;
    ASSERT_FALSE(replicas.empty());
    EXPECT_EQ(replicas[0].what, "DP replica 5");
}

TEST(TimerConventions, OnlyTpRankZeroRecordingIsAttributedAndSaidOnce) {
    temp_dir dir;
    const auto p = dir / "timeline.json";
    write_dp_processes(
        wlb::test::simulated_timers(job64, 2, 8, {runtime::parse_fault("slow-rank=44:1.5")}), job64,
        p, /*tp_ranks=*/1);
    ingest_options o;
    o.job_layout = job64; // one TP rank per group: the names cannot say tp=2
    const auto r = analyze_file(p, o);
    EXPECT_EQ(count_warnings(r.job, "only TP rank 0 of each TP group (tp=2)"), 1);
    EXPECT_EQ(count_warnings(r.job, "have no trace"), 0);
    ASSERT_EQ(r.attribution.attributed_steps, 2) << r.attribution.steps[0].skipped_reason;
    ASSERT_TRUE(r.attribution.dominant.has_value());
    EXPECT_EQ(*r.attribution.dominant, cause::slow_worker);
    EXPECT_EQ(r.attribution.steps[0].causes[static_cast<int>(cause::slow_worker)].involved[0].rank,
              44);
}

// Coordinates spelled "tpA cpB ppC dpD" in the thread names of processes with opaque names.
TEST(TimerConventions, CompactCoordinatesInThreadNames) {
    const auto l = runtime::layout::parse("tp=1,cp=1,pp=2,dp=2");
    const auto ops = wlb::test::simulated_timers(l, 2, 4, {runtime::parse_fault("heavy-mb=2:1.8")});
    timeline tl;
    tl.process(7, "python3");
    for (int r = 0; r < 4; ++r) {
        const auto c = l.coords_of(r);
        tl.thread(7, r, fmt::format("worker tp{} cp{} pp{} dp{}", c.tp, c.cp, c.pp, c.dp));
    }
    for (const auto& t : ops)
        tl.timer(7, t.rank, t.timer, t.start_ns, t.end_ns, timer_args(t));
    temp_dir dir;
    tl.write(dir / "tl.json");
    const auto r = analyze_file(dir / "tl.json");
    EXPECT_EQ(r.job.job_layout.spec(), "tp=1,cp=1,pp=2,dp=2");
    ASSERT_EQ(r.attribution.attributed_steps, 2) << r.attribution.steps[0].skipped_reason;
    EXPECT_EQ(*r.attribution.dominant, cause::pp_packing);
}

// Names no convention gives: an error that lists them and the option; --rank-map places them.
TEST(TimerConventions, OpaqueNamesNeedTheRankMap) {
    const auto l = runtime::layout::parse("tp=1,cp=1,pp=2,dp=2");
    const auto ops =
        wlb::test::simulated_timers(l, 2, 4, {runtime::parse_fault("slow-rank=3:1.5")});
    timeline tl;
    for (int d = 0; d < 2; ++d) {
        tl.process(40 + d, fmt::format("worker-{}", d));
        for (int p = 0; p < 2; ++p)
            tl.thread(40 + d, p, fmt::format("stage{}/gpu{}", p, p + 2 * d));
    }
    for (const auto& t : ops) {
        const auto c = l.coords_of(t.rank);
        tl.timer(40 + c.dp, c.pp, t.timer, t.start_ns, t.end_ns, timer_args(t));
    }
    temp_dir dir;
    const auto p = dir / "opaque.json";
    tl.write(p);
    try {
        (void)analyze_file(p);
        ADD_FAILURE() << "placed ranks from names that do not say them";
    } catch (const input_error& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("\"worker-1\""), std::string::npos) << what;
        EXPECT_NE(what.find("\"stage1/gpu3\""), std::string::npos) << what;
        EXPECT_NE(what.find("--rank-map"), std::string::npos) << what;
        EXPECT_NE(what.find(p.string()), std::string::npos) << what;
    }
    ingest_options o;
    o.rank_map = "process:worker-(\\d+) -> dp=$1; thread:stage(\\d+)/ -> pp=$1";
    const auto r = analyze_file(p, o);
    EXPECT_EQ(r.job.job_layout.spec(), "tp=1,cp=1,pp=2,dp=2");
    ASSERT_EQ(r.attribution.attributed_steps, 2) << r.attribution.steps[0].skipped_reason;
    EXPECT_EQ(*r.attribution.dominant, cause::slow_worker);
    EXPECT_EQ(r.attribution.steps[0].causes[static_cast<int>(cause::slow_worker)].involved[0].rank,
              3);
}

// Megatron's send_forward_recv_backward recorded as two overlapping timers: one transfer.
TEST(TimerConventions, OverlappingSendAndReceiveAreOneTransfer) {
    timeline tl;
    tl.process(0, "rank 0");
    tl.timer(0, 1, "forward-compute", 0, 10'000, R"("step":0,"micro_batch":0)");
    tl.timer(0, 1, "forward-send", 10'000, 20'000, R"("step":0,"seq_id":0)");
    tl.timer(0, 1, "backward-recv", 12'000, 30'000, R"("step":0,"seq_id":0)");
    tl.timer(0, 1, "backward-compute", 30'000, 50'000, R"("step":0,"micro_batch":0)");
    temp_dir dir;
    tl.write(dir / "x.json");
    ingest_options o;
    o.keep_events = true;
    const auto job = ingest({(dir / "x.json").string()}, o);
    EXPECT_EQ(count_warnings(job, "overlap"), 1) << "the combined note, no clipping";
    EXPECT_EQ(count_warnings(job, "combined exchanges"), 1);
    int transfers = 0;
    for (const auto& e : job.ranks[0].events) {
        if (e.where != runtime::lane::pp)
            continue;
        ++transfers;
        EXPECT_EQ(e.kind, runtime::event_kind::recv);
        EXPECT_EQ(e.ph, runtime::phase::bwd);
        EXPECT_EQ(e.micro_batch, 0);
        EXPECT_EQ(e.start_ns, 10'000);
        EXPECT_EQ(e.dur_ns, 20'000);
        EXPECT_EQ(job.names[e.name], "forward-send + backward-recv");
    }
    EXPECT_EQ(transfers, 1);
}

} // namespace
} // namespace wlb::profiler
