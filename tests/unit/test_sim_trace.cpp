// Simulated traces: every exported Perfetto file passes the checker, the wlbtune.trace/1
// directory round-trips, and the checker catches what it must.
#include "base/error.hpp"
#include "reports/perfetto.hpp"
#include "reports/perfetto_check.hpp"
#include "runtime/sim/sim_trace.hpp"
#include "runtime/sim/simulator.hpp"
#include "support/cli_runner.hpp"
#include "support/fake_duration_model.hpp"

#include <fstream>
#include <gtest/gtest.h>
#include <random>

namespace wlb::runtime {
namespace {

trace simulated_trace(const layout& l, int micro_batches, const std::vector<fault>& faults = {}) {
    wlb::test::fake_duration_model model;
    model.layers = l.pp() * l.vpp() * 2;
    model.attention_seconds_per_pair = 1e-10;
    model.collective_seconds_each = 1e-5;
    model.p2p_seconds_each = 3e-5;
    model.output_seconds_per_token = 1e-7;
    model.optimizer_seconds_each = 1e-4;
    model.layer_params = 1e7;
    std::mt19937_64 rng(3);
    trace t;
    t.meta.source = "simulated";
    t.meta.job_layout = l;
    t.meta.steps = 2;
    t.meta.tp_replicated = true;
    std::int64_t offset = 0, flows = 0;
    for (int s = 0; s < 2; ++s) {
        auto step = wlb::test::make_step(l.dp(), l.cp(), micro_batches, [&](int, int) {
            return 256 + static_cast<std::int64_t>(rng() % 4096);
        });
        step.step = s;
        plan_options o;
        o.bucket_params = 1.5e7;
        auto plan = build_step_plan(l, step, model, o);
        auto r = simulate(plan, faults);
        flows = append_step_trace(t, plan, r, offset, flows);
        offset += std::llround(r.step_seconds * 1e9);
    }
    return t;
}

TEST(SimTrace, EveryExportedTracePassesTheChecker) {
    wlb::test::temp_dir dir;
    const layout layouts[] = {layout(2, 2, 2, 2), layout(2, 1, 4, 1, 2), layout(1, 4, 1, 1),
                              layout(4, 2, 3, 1)};
    int n = 0;
    for (const auto& l : layouts) {
        auto t = simulated_trace(l, l.pp() * 2, {parse_fault("slow-rank=1:1.3")});
        for (const char* ext : {".json", ".json.gz"}) {
            const auto path = (dir / ("t" + std::to_string(n++) + ext)).string();
            reports::write_perfetto(t, path, "simulated");
            auto check = reports::check_perfetto_file(path);
            for (const auto& p : check.problems)
                ADD_FAILURE() << l.spec() << ": " << p;
            EXPECT_EQ(static_cast<int>(check.processes), l.world_size());
            std::size_t events = 0, sends = 0;
            for (const auto& r : t.ranks)
                for (const auto& e : r) {
                    events += 1;
                    sends += e.kind == event_kind::send ? 1 : 0;
                }
            EXPECT_EQ(check.slices, events);
            EXPECT_EQ(check.flows, sends);
        }
    }
}

TEST(SimTrace, TpPeersCarryTheSameTimeline) {
    layout l(4, 2, 2, 1);
    auto t = simulated_trace(l, 4);
    for (int r = 0; r < l.world_size(); ++r) {
        auto c = l.coords_of(r);
        c.tp = 0;
        const auto& mine = t.ranks[static_cast<std::size_t>(r)];
        const auto& rep = t.ranks[static_cast<std::size_t>(l.rank_of(c))];
        ASSERT_EQ(mine.size(), rep.size());
        for (std::size_t i = 0; i < mine.size(); ++i) {
            EXPECT_EQ(mine[i].start_ns, rep[i].start_ns);
            EXPECT_EQ(mine[i].name, rep[i].name);
            EXPECT_EQ(mine[i].rank, r);
        }
    }
}

TEST(SimTrace, DirectoryRoundTrips) {
    wlb::test::temp_dir dir;
    layout l(2, 2, 2, 1);
    auto t = simulated_trace(l, 2);
    write_trace_dir(dir.path().string(), t);
    trace_reader reader(dir.path().string());
    EXPECT_EQ(reader.meta().source, "simulated");
    EXPECT_EQ(reader.meta().job_layout, l);
    EXPECT_TRUE(reader.meta().tp_replicated);
    auto back = reader.read_all();
    ASSERT_EQ(back.ranks.size(), t.ranks.size());
    for (std::size_t r = 0; r < t.ranks.size(); ++r) {
        ASSERT_EQ(back.ranks[r].size(), t.ranks[r].size());
        for (std::size_t i = 0; i < t.ranks[r].size(); ++i) {
            const auto &a = t.ranks[r][i], &b = back.ranks[r][i];
            EXPECT_EQ(a.start_ns, b.start_ns);
            EXPECT_EQ(a.dur_ns, b.dur_ns);
            EXPECT_EQ(a.name, b.name);
            EXPECT_EQ(a.where, b.where);
            EXPECT_EQ(a.kind, b.kind);
            EXPECT_EQ(a.ph, b.ph);
            EXPECT_EQ(a.micro_batch, b.micro_batch);
            EXPECT_EQ(a.flow_id, b.flow_id);
            EXPECT_EQ(a.bytes.has_value(), b.bytes.has_value());
        }
    }
    // A corrupt line is named by file and line.
    {
        std::ofstream out(dir / "rank_00001.jsonl", std::ios::app);
        out << "{\"rank\": 1, \"lane\": \"gpu\"}\n";
    }
    try {
        reader.read_rank(1, [](trace_event&&) {});
        ADD_FAILURE() << "no error";
    } catch (const input_error& e) {
        EXPECT_NE(std::string(e.what()).find("rank_00001.jsonl:"), std::string::npos) << e.what();
    }
}

TEST(PerfettoCheck, CatchesOverlapsBadNamesAndDanglingFlows) {
    wlb::test::temp_dir dir;
    const auto path = (dir / "bad.json").string();
    std::ofstream(path) << R"({"traceEvents":[
      {"ph":"M","pid":0,"name":"process_name","args":{"name":"gpu 0"}},
      {"ph":"M","pid":0,"tid":1,"name":"thread_name","args":{"name":"compute"}},
      {"ph":"X","pid":0,"tid":1,"name":"a","ts":0,"dur":10,"args":{"micro_batch":0,"stage":0,"phase":"fwd"}},
      {"ph":"X","pid":0,"tid":1,"name":"b","ts":5,"dur":10,"args":{"micro_batch":0,"stage":0,"phase":"fwd"}},
      {"ph":"X","pid":0,"tid":2,"name":"c","ts":0,"dur":1,"args":{}},
      {"ph":"s","pid":0,"tid":1,"id":7,"ts":1}
    ]})";
    auto r = reports::check_perfetto_file(path);
    auto has = [&](const char* part) {
        for (const auto& p : r.problems)
            if (p.find(part) != std::string::npos)
                return true;
        return false;
    };
    EXPECT_TRUE(has("expected \"rank 0 tpA")) << r.problems.size();
    EXPECT_TRUE(has("inside traceEvents[2]"));
    EXPECT_TRUE(has("no thread_name"));
    EXPECT_TRUE(has("args has no \"micro_batch\""));
    EXPECT_TRUE(has("flow 7"));
    EXPECT_FALSE(reports::check_perfetto_file((dir / "missing.json").string()).ok());
}

} // namespace
} // namespace wlb::runtime
