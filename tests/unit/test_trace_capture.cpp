// Capture of a real run (CPU backend over the fake communicator): every rank's operations become
// wlbtune.trace/1 events written by the ranks themselves; the directory reads back with the
// simulator's contract (lanes, kinds, phases, steps, micro-batches, stages, bytes, send/receive
// flows) and exports a Perfetto file that reports/perfetto_check accepts.
#include "reports/perfetto.hpp"
#include "reports/perfetto_check.hpp"
#include "runtime/comm/fake_communicator.hpp"
#include "runtime/trace/trace.hpp"
#include "runtime/trace/trace_capture.hpp"
#include "runtime/train/make_backend.hpp"
#include "runtime/train/train_run.hpp"
#include "support/cli_runner.hpp"
#include "support/run_batches.hpp"

#include <gtest/gtest.h>
#include <map>
#include <set>

using namespace wlb;
using namespace wlb::runtime;
using namespace wlb::test;

namespace {

// Two steps of `l` with wlb packing and per-doc sharding, captured into `dir`.
std::vector<run_result> run_captured(const layout& l, const std::string& dir) {
    std::vector<training_step> steps;
    for (int s = 0; s < 2; ++s) {
        auto step = run_test_step(l, tuner::packing_policy::wlb, tuner::sharding_policy::per_doc);
        step.batch.step = s;
        steps.push_back(std::move(step));
    }
    backend_options bo;
    bo.model = run_test_model();
    bo.job_layout = l;
    bo.numbers = precision::f64;
    bo.trainer.schedule = parse_schedule("auto", l.vpp());
    run_options ro;
    ro.trace_dir = dir;
    ro.trace_info.source = "cpu";
    ro.trace_info.note = "test";
    std::vector<run_result> results(static_cast<std::size_t>(l.world_size()));
    fake_world::run(l.world_size(), 30.0, [&](communicator& world) {
        auto backend = make_backend(backend_kind::cpu, world, bo);
        results[static_cast<std::size_t>(world.rank())] =
            run_training(*backend, world, l, steps, ro);
    });
    return results;
}

void check_trace(const layout& l) {
    temp_dir tmp;
    const std::string dir = (tmp / "trace").string();
    const auto results = run_captured(l, dir);
    const trace t = trace_reader(dir).read_all();
    EXPECT_EQ(t.meta.source, "cpu");
    EXPECT_EQ(t.meta.job_layout, l);
    EXPECT_EQ(t.meta.steps, 2);
    EXPECT_FALSE(t.meta.tp_replicated);
    ASSERT_EQ(t.ranks.size(), static_cast<std::size_t>(l.world_size()));
    std::int64_t events = 0;
    std::map<std::int64_t, int> sends, recvs; // flow id -> count
    std::map<std::int64_t, std::int64_t> send_start, recv_end;
    for (int r = 0; r < l.world_size(); ++r) {
        const auto& ev = t.ranks[static_cast<std::size_t>(r)];
        const coords c = l.coords_of(r);
        events += static_cast<std::int64_t>(ev.size());
        ASSERT_FALSE(ev.empty()) << "rank " << r;
        std::set<std::pair<std::int64_t, int>> attention_fwd; // (step, micro-batch)
        std::set<lane> lanes;
        bool optimizer = false;
        for (std::size_t i = 0; i < ev.size(); ++i) {
            const auto& e = ev[i];
            ASSERT_EQ(e.rank, r);
            ASSERT_GE(e.start_ns, 0);
            if (i > 0) { // one thread: in start order, never overlapping
                ASSERT_LE(ev[i - 1].end_ns(), e.start_ns) << e.name;
            }
            ASSERT_EQ(e.stage, c.pp);
            ASSERT_TRUE(e.step == 0 || e.step == 1);
            lanes.insert(e.where);
            if (e.micro_batch >= 0) {
                ASSERT_GE(e.virtual_stage, 0);
                ASSERT_LT(e.virtual_stage, l.vpp());
            } else {
                ASSERT_EQ(e.virtual_stage, -1) << e.name;
            }
            switch (e.kind) {
            case event_kind::compute:
                ASSERT_EQ(e.where, lane::compute) << e.name;
                ASSERT_FALSE(e.bytes.has_value());
                break;
            case event_kind::collective:
                ASSERT_NE(e.where, lane::compute) << e.name;
                ASSERT_TRUE(e.bytes.has_value() && *e.bytes > 0) << e.name;
                break;
            case event_kind::send:
            case event_kind::recv:
                ASSERT_EQ(e.where, lane::pp);
                ASSERT_GT(e.flow_id, 0);
                ASSERT_TRUE(e.bytes.has_value() && *e.bytes > 0);
                if (e.kind == event_kind::send) {
                    ++sends[e.flow_id];
                    send_start[e.flow_id] = e.start_ns;
                } else {
                    ++recvs[e.flow_id];
                    recv_end[e.flow_id] = e.end_ns();
                }
                break;
            case event_kind::other:
                ASSERT_EQ(e.where, lane::host) << e.name;
                break;
            }
            if (e.name == "attention fwd") {
                ASSERT_EQ(e.ph, phase::fwd);
                attention_fwd.insert({e.step, e.micro_batch});
            }
            if (e.name == "cp all-gather kv") {
                ASSERT_EQ(e.where, lane::cp);
            }
            if (e.name == "optimizer step") {
                ASSERT_EQ(e.ph, phase::optimizer);
                optimizer = true;
            }
        }
        EXPECT_TRUE(optimizer) << "rank " << r;
        // Every micro-batch of both steps ran its forward attention on every rank.
        // run_test_step packs 2 micro-batches per replica; 2 steps.
        EXPECT_EQ(attention_fwd.size(), 4u) << "rank " << r;
        EXPECT_TRUE(lanes.count(lane::compute) && lanes.count(lane::host));
        EXPECT_EQ(lanes.count(lane::cp) > 0, l.cp() > 1) << "rank " << r;
        EXPECT_EQ(lanes.count(lane::tp) > 0, l.tp() > 1) << "rank " << r;
        EXPECT_EQ(lanes.count(lane::dp) > 0, l.dp() > 1) << "rank " << r;
        EXPECT_EQ(lanes.count(lane::pp) > 0, l.pp() > 1) << "rank " << r;
    }
    for (const auto& r : results)
        EXPECT_EQ(r.trace_events, events);
    // Every send has exactly one receive, which ends after the send started.
    EXPECT_EQ(sends.size(), recvs.size());
    for (const auto& [id, n] : sends) {
        EXPECT_EQ(n, 1);
        ASSERT_EQ(recvs.count(id), 1u) << "flow " << id;
        EXPECT_EQ(recvs[id], 1);
        EXPECT_LE(send_start[id], recv_end[id]);
    }
    if (l.pp() > 1) {
        EXPECT_FALSE(sends.empty());
    }

    const std::string perfetto = (tmp / "run.json.gz").string();
    reports::write_perfetto(t, perfetto, "measured (cpu, host timers)");
    const auto check = reports::check_perfetto_file(perfetto);
    EXPECT_TRUE(check.ok()) << (check.problems.empty() ? "" : check.problems.front());
    EXPECT_EQ(check.slices, static_cast<std::size_t>(events));
    EXPECT_EQ(check.flows, sends.size());
    EXPECT_EQ(check.processes, static_cast<std::size_t>(l.world_size()));
}

TEST(TraceCapture, InterleavedPipelineWithContextAndDataParallelReadsBackAndExports) {
    check_trace(layout(1, 2, 2, 2, 2));
}

TEST(TraceCapture, TensorParallelPipelineReadsBackAndExports) {
    check_trace(layout(2, 1, 2, 1));
}

TEST(TraceCapture, FlowIdsAreUniquePerSenderStepAndMessage) {
    std::set<std::int64_t> ids;
    for (std::int64_t step = 0; step < 3; ++step)
        for (int sender = 0; sender < 4; ++sender)
            for (std::int64_t m = 0; m < 5; ++m)
                EXPECT_TRUE(ids.insert(p2p_flow_id(step, sender, 4, m)).second);
    EXPECT_GT(*ids.begin(), 0);
}

} // namespace
