// The check of lost time against the batches' predicted work (profiler/analysis/work_check.hpp): on
// simulated traces whose durations follow tokens and attention pairs exactly, the seconds PP
// packing, CP sharding and DP imbalance cost are the same from the measured durations and from
// the batch contents; a heavy micro-batch that is not in the data (an injected fault) shows as
// measured loss the batches do not predict; a batch that does not match the trace is refused per
// step; the batches travel with a trace directory and a broken batches file loses the check, not
// the analysis.
#include "base/error.hpp"
#include "profiler/analysis/analysis.hpp"
#include "profiler/ingest/ingest.hpp"
#include "runtime/sim/fault.hpp"
#include "runtime/sim/sim_trace.hpp"
#include "runtime/sim/simulator.hpp"
#include "runtime/trace/sharded_batch_io.hpp"
#include "support/cli_runner.hpp"
#include "support/fake_duration_model.hpp"

#include <cmath>
#include <fstream>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace wlb::profiler {
namespace {

constexpr int steps = 3;

// Micro-batches of unequal length (PP packing), replicas of unequal totals (DP imbalance), each
// micro-batch one document cut into contiguous CP chunks (later chunks attend more: CP sharding).
// With `balanced`, every micro-batch has the same tokens.
std::vector<runtime::sharded_step> batches(const runtime::layout& l, int micro_batches,
                                           bool balanced = false) {
    std::vector<runtime::sharded_step> out;
    for (int s = 0; s < steps; ++s) {
        auto step = test::make_step(l.dp(), l.cp(), micro_batches, [&](int d, int m) {
            return std::int64_t{1024} * (balanced ? 4 : 2 + (3 * d + 2 * m + s) % 5);
        });
        step.step = s;
        out.push_back(std::move(step));
    }
    return out;
}

test::fake_duration_model model() {
    test::fake_duration_model m;
    m.layers = 4;
    m.linear_seconds_per_token = 1e-6;
    m.attention_seconds_per_pair = 2e-6 / 4096.0; // attention about as heavy as linear work
    m.collective_seconds_each = 2e-4;
    m.p2p_seconds_each = 3e-4;
    m.optimizer_seconds_each = 1e-3;
    m.layer_params = 1e6;
    return m;
}

runtime::trace simulated(const runtime::layout& l, const std::vector<runtime::sharded_step>& b,
                         const std::vector<runtime::fault>& faults = {}) {
    runtime::trace t;
    t.meta.source = "simulated";
    t.meta.job_layout = l;
    t.meta.steps = static_cast<std::int64_t>(b.size());
    t.meta.tp_replicated = true;
    const auto m = model();
    std::int64_t offset = 0, flow = 0;
    for (const auto& s : b) {
        const auto plan = runtime::build_step_plan(l, s, m);
        const auto r = runtime::simulate(plan, faults);
        flow = runtime::append_step_trace(t, plan, r, offset, flow);
        offset += std::llround(r.step_seconds * 1e9);
    }
    t.batches = b;
    return t;
}

analysis_result analyze_trace(const runtime::trace& t) {
    return analyze_job(ingest_trace(t, {}), false);
}

double lost(const std::array<double, cause_count>& a, cause c) {
    return a[static_cast<std::size_t>(c)];
}

TEST(WorkCheck, LostTimeFollowsTheBatchesWhenDurationsFollowTheirWork) {
    const auto l = runtime::layout::parse("cp=2,pp=2,dp=2");
    const auto r = analyze_trace(simulated(l, batches(l, 4)));
    ASSERT_EQ(r.attribution.attributed_steps, steps);
    const auto& w = r.work;
    ASSERT_TRUE(w.available) << w.reason;
    EXPECT_EQ(w.steps, steps);
    EXPECT_EQ(w.cells.size(), static_cast<std::size_t>(steps * 2 * 4 * 2));
    ASSERT_TRUE(w.correlation.has_value());
    EXPECT_GT(*w.correlation, 0.999);
    EXPECT_GT(w.heaviest_micro_batch_groups, 0);
    EXPECT_EQ(w.heaviest_micro_batch_agree, w.heaviest_micro_batch_groups);
    EXPECT_GT(w.heaviest_cp_rank_groups, 0);
    EXPECT_EQ(w.heaviest_cp_rank_agree, w.heaviest_cp_rank_groups);
    for (const cause c : batch_causes) {
        const double measured = lost(w.measured_lost_s, c), predicted = lost(w.predicted_lost_s, c);
        EXPECT_EQ(measured, lost(r.attribution.lost_s, c)) << cause_name(c);
        EXPECT_GT(measured, 0.0) << cause_name(c) << ": the batches carry this imbalance";
        EXPECT_NEAR(predicted, measured, 0.01 * measured) << cause_name(c);
    }
    // Cells: the batch's tokens and pairs, the measured compute over stages and passes.
    const auto& cell = w.cells.front();
    const auto& chunk = r.job.batches.front().replicas[0][0].ranks[0].chunks[0];
    EXPECT_EQ(cell.tokens, chunk.q_tokens);
    EXPECT_EQ(cell.attention_pairs, runtime::causal_pairs(chunk.q_tokens, chunk.q_offset));
    EXPECT_NEAR(cell.measured_s, cell.predicted_s, 1e-6 * cell.measured_s);
}

TEST(WorkCheck, AHeavyMicroBatchThatIsNotInTheDataIsMeasuredLossTheBatchesDoNotPredict) {
    // Micro-batches of equal tokens; micro-batch 1 is 1.8x slower in every step all the same.
    const auto l = runtime::layout::parse("cp=2,pp=2,dp=1");
    const auto b = batches(l, 4, true);
    const auto clean = analyze_trace(simulated(l, b)).work;
    EXPECT_NEAR(lost(clean.measured_lost_s, cause::pp_packing), 0.0, 1e-9);
    const auto heavy = analyze_trace(simulated(l, b, {runtime::parse_fault("heavy-mb=1:1.8")}));
    const auto& w = heavy.work;
    ASSERT_TRUE(w.available) << w.reason;
    const double measured = lost(w.measured_lost_s, cause::pp_packing);
    const double predicted = lost(w.predicted_lost_s, cause::pp_packing);
    EXPECT_GT(measured, 0.01) << "seconds over 3 steps";
    EXPECT_NEAR(predicted, 0.0, 1e-9) << "the batches cannot predict a fault";
    // CP chunks still differ (contiguous sharding), so the cells have a spread to follow; the
    // heavy micro-batch's cells fall off it.
    ASSERT_TRUE(clean.correlation.has_value());
    ASSERT_TRUE(w.correlation.has_value());
    EXPECT_GT(*clean.correlation, 0.999);
    EXPECT_LT(*w.correlation, 0.95);
    EXPECT_EQ(w.heaviest_micro_batch_groups, 0) << "no micro-batch is heavier in the data";
}

TEST(WorkCheck, ABatchOfAnotherShapeIsNotCheckedAndSaysWhy) {
    const auto l = runtime::layout::parse("cp=2,pp=2,dp=2");
    auto t = simulated(l, batches(l, 4));
    t.batches[1].replicas[1].pop_back();
    t.batches.pop_back(); // step 2 has no batch
    const auto w = analyze_trace(t).work;
    ASSERT_TRUE(w.available);
    EXPECT_EQ(w.steps, 1);
    ASSERT_EQ(w.skipped.size(), 2u);
    EXPECT_EQ(w.skipped[0], "step 1: replica 1 has 3 micro-batches in the batch, 4 in the trace");
    EXPECT_EQ(w.skipped[1], "step 2: no batch recorded");

    auto none = simulated(l, batches(l, 4));
    none.batches.clear();
    const auto n = analyze_trace(none).work;
    EXPECT_FALSE(n.available);
    EXPECT_NE(n.reason.find("records no batches"), std::string::npos) << n.reason;
}

TEST(WorkCheck, TheBatchesTravelWithATraceDirectoryAndABrokenFileLosesOnlyTheCheck) {
    const auto l = runtime::layout::parse("cp=2,pp=2,dp=1");
    const auto t = simulated(l, batches(l, 2));
    test::temp_dir dir;
    const auto path = dir.path().string();
    runtime::write_trace_dir(path, t);
    const runtime::trace_reader reader(path);
    EXPECT_EQ(reader.meta().batches, runtime::trace_batches_file);
    const auto back = reader.read_batches();
    ASSERT_EQ(back.size(), t.batches.size());
    EXPECT_EQ(runtime::sharded_batch_json(back), runtime::sharded_batch_json(t.batches));

    const auto ok = analyze({path}, {});
    EXPECT_TRUE(ok.work.available) << ok.work.reason;

    const auto file = (dir.path() / runtime::trace_batches_file).string();
    std::ofstream(file) << R"({"schema": "wlbtune.sharded_batch/1", "steps": [{"replicas": [[[[)";
    const auto broken = analyze({path}, {});
    EXPECT_FALSE(broken.work.available);
    EXPECT_EQ(broken.attribution.attributed_steps, steps) << "the analysis goes on";
    ASSERT_FALSE(broken.job.warnings.empty());
    EXPECT_EQ(broken.job.warnings.front().where, file);
    EXPECT_NE(broken.job.warnings.front().message.find("not valid JSON"), std::string::npos)
        << broken.job.warnings.front().message;
}

// A slow worker stays named when, in one micro-batch, its reference peer is slow too (there a
// heavy micro-batch not in the data): most of its slots are over its peers, not all.
TEST(WorkCheck, ASlowWorkerIsNamedWhenOneOfItsPeersMicroBatchesIsHeavyToo) {
    const auto l = runtime::layout::parse("pp=2,dp=2");
    const auto b = batches(l, 4, true);
    const auto r = analyze_trace(simulated(
        l, b, {runtime::parse_fault("slow-rank=0:1.3"), runtime::parse_fault("heavy-mb=1@1:1.5")}));
    ASSERT_EQ(r.attribution.attributed_steps, steps);
    for (const auto& s : r.attribution.steps) {
        const auto& inv = s.causes[static_cast<std::size_t>(cause::slow_worker)].involved;
        ASSERT_EQ(inv.size(), 1u) << "step " << s.step;
        EXPECT_EQ(inv[0].rank, 0);
        EXPECT_NEAR(inv[0].factor, 1.3, 0.01);
    }
    EXPECT_GT(lost(r.attribution.lost_s, cause::slow_worker), 0.0);
}

// With cp = 1 workers are compared across replicas; where the batches give the tokens, a
// replica with more of them has more work (DP imbalance), not a slow worker, and the batches
// predict what it costs.
TEST(WorkCheck, AReplicaWithMoreTokensIsDataImbalanceNotASlowWorker) {
    const auto l = runtime::layout::parse("dp=2");
    std::vector<runtime::sharded_step> b;
    for (int s = 0; s < steps; ++s) {
        auto step =
            test::make_step(2, 1, 2, [](int d, int) { return std::int64_t{d ? 6144 : 4096}; });
        step.step = s;
        b.push_back(std::move(step));
    }
    const auto r = analyze_trace(simulated(l, b));
    ASSERT_TRUE(r.attribution.dominant.has_value());
    EXPECT_EQ(*r.attribution.dominant, cause::dp_imbalance);
    EXPECT_EQ(lost(r.attribution.lost_s, cause::slow_worker), 0.0);
    ASSERT_TRUE(r.work.available) << r.work.reason;
    const double measured = lost(r.work.measured_lost_s, cause::dp_imbalance);
    EXPECT_GT(measured, 0.0);
    EXPECT_NEAR(lost(r.work.predicted_lost_s, cause::dp_imbalance), measured, 0.01 * measured);
}

// --steps: a range of step ids; the steps outside it leave with their events and batches.
TEST(StepSelection, ParsesRangesAndKeepsOnlyTheirStepsEventsAndBatches) {
    EXPECT_EQ(parse_step_range("1:").first, 1);
    EXPECT_FALSE(parse_step_range("1:").last.has_value());
    EXPECT_EQ(parse_step_range(":4").last, 4);
    EXPECT_EQ(parse_step_range("2").first, 2);
    EXPECT_EQ(parse_step_range("2").last, 2);
    EXPECT_EQ(parse_step_range("2:7").describe(), "2:7");
    for (const char* bad : {"", ":", "3:1", "-1", "a", "1:x", "1:2:3"})
        EXPECT_THROW((void)parse_step_range(bad), input_error) << bad;

    const auto l = runtime::layout::parse("cp=2,pp=2,dp=1");
    auto job = ingest_trace(simulated(l, batches(l, 2)), {});
    ASSERT_EQ(job.steps, (std::vector<std::int64_t>{0, 1, 2}));
    const std::size_t events = job.record_count();
    select_steps(job, parse_step_range("1:"));
    EXPECT_EQ(job.steps, (std::vector<std::int64_t>{1, 2}));
    EXPECT_EQ(job.step_selection, "steps 1-2 of 0-2 (--steps 1:)");
    EXPECT_LT(job.record_count(), events);
    for (const auto& rt : job.ranks)
        for (const auto& e : rt.events)
            EXPECT_NE(e.step, 0);
    ASSERT_EQ(job.batches.size(), 2u);
    EXPECT_EQ(job.batches.front().step, 1);
    const auto r = analyze_job(std::move(job), false);
    EXPECT_EQ(r.attribution.attributed_steps, 2);
    EXPECT_EQ(r.work.steps, 2);

    auto other = ingest_trace(simulated(l, batches(l, 2)), {});
    try {
        select_steps(other, parse_step_range("5:"));
        ADD_FAILURE() << "no step is left";
    } catch (const input_error& e) {
        EXPECT_STREQ(e.what(), "--steps \"5:\" leaves no step: the trace has steps 0-2");
    }
}

} // namespace
} // namespace wlb::profiler
