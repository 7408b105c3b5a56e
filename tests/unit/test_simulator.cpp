// The step plan and the simulator: closed forms of the pipeline schedules, CP synchronization,
// fault injection, and invariants every simulated step keeps.
#include "base/error.hpp"
#include "runtime/model/model_spec.hpp"
#include "runtime/sim/simulator.hpp"
#include "support/fake_duration_model.hpp"
#include "tuner/cost/cost_model.hpp"
#include "tuner/cost/hardware.hpp"
#include "tuner/cost/plan_durations.hpp"
#include "tuner/data/document_stream.hpp"
#include "tuner/packing/pack_run.hpp"
#include "tuner/sharding/make_sharder.hpp"
#include "tuner/sharding/sharding.hpp"

#include <algorithm>
#include <cmath>
#include <gtest/gtest.h>
#include <random>
#include <set>

namespace wlb::runtime {
namespace {

using wlb::test::fake_duration_model;
using wlb::test::make_step;

constexpr double tol = 1e-9;

// Every dependency holds and the critical path tiles [0, step].
void check_invariants(const step_plan& plan, const sim_result& r) {
    for (std::size_t i = 0; i < plan.ops.size(); ++i) {
        const auto& op = plan.ops[i];
        EXPECT_LE(r.start_seconds[i], r.end_seconds[i] + tol) << op.name;
        if (op.kind == op_kind::recv) {
            const auto s = static_cast<std::size_t>(op.peer);
            EXPECT_GE(r.end_seconds[i] + tol, r.end_seconds[s]) << "recv ends before its send";
            EXPECT_GE(r.end_seconds[i] + tol, r.start_seconds[s]);
        }
        if (op.kind == op_kind::layers || op.kind == op_kind::collective) {
            for (int m : plan.groups[static_cast<std::size_t>(op.group)])
                EXPECT_GE(r.end_seconds[i] + tol, r.start_seconds[static_cast<std::size_t>(m)])
                    << "collective ends before a member arrived";
        }
        if (op.peer >= 0 && op.kind == op_kind::collective) {
            const auto p = static_cast<std::size_t>(op.peer);
            EXPECT_GE(r.start_seconds[i] + tol,
                      layer_end_seconds(r, plan.ops[p], op.peer, op.after_layers));
        }
    }
    for (const auto& u : plan.units)
        for (const auto* stream : {&u.main, &u.dp})
            for (std::size_t k = 1; k < stream->size(); ++k)
                EXPECT_GE(r.start_seconds[static_cast<std::size_t>((*stream)[k])] + tol,
                          r.end_seconds[static_cast<std::size_t>((*stream)[k - 1])])
                    << "ops of one stream overlap";
    ASSERT_FALSE(r.critical_path.empty());
    EXPECT_NEAR(r.critical_path.front().from_seconds, 0.0, tol);
    EXPECT_NEAR(r.critical_path.back().to_seconds, r.step_seconds, tol);
    for (std::size_t k = 1; k < r.critical_path.size(); ++k)
        EXPECT_NEAR(r.critical_path[k].from_seconds, r.critical_path[k - 1].to_seconds, tol);
    for (const auto& t : r.units) {
        EXPECT_GE(t.idle_seconds, -tol);
        EXPECT_NEAR(t.busy_seconds + t.exposed_comm_seconds + t.idle_seconds, r.step_seconds,
                    1e-7 * r.step_seconds);
    }
}

TEST(PipelineOrder, EverySlotExactlyOnceAndBackwardAfterForward) {
    for (int pp : {1, 2, 4, 8})
        for (int vpp : {1, 2, 3})
            for (int mult : {1, 2, 3}) {
                const int m = pp * mult;
                for (int p = 0; p < pp; ++p) {
                    auto order = pipeline_order(pp, vpp, m, p);
                    ASSERT_EQ(static_cast<int>(order.size()), 2 * m * vpp);
                    std::set<std::tuple<int, int, int>> seen;
                    for (std::size_t i = 0; i < order.size(); ++i) {
                        const auto& s = order[i];
                        ASSERT_TRUE(
                            seen.insert({int(s.phase), s.micro_batch, s.virtual_stage}).second);
                        if (s.phase == pass::bwd) {
                            auto f =
                                std::find(order.begin(), order.end(),
                                          pipeline_slot{pass::fwd, s.micro_batch, s.virtual_stage});
                            ASSERT_LT(f - order.begin(), static_cast<long>(i));
                        }
                    }
                }
            }
}

TEST(PipelineOrder, InterleavedRejectsGroupsThatDoNotFit) {
    EXPECT_THROW(pipeline_order(4, 2, 6, 0), input_error);                           // 6 % 4 != 0
    EXPECT_THROW(pipeline_order(4, 2, 8, 0, {.micro_batch_group = 2}), input_error); // N < P
    EXPECT_NO_THROW(pipeline_order(4, 2, 8, 0, {.micro_batch_group = 8}));
    EXPECT_THROW(parse_schedule("1f1b", 2), input_error);
    EXPECT_THROW(parse_schedule("llama3:x", 2), input_error);
    EXPECT_EQ(parse_schedule("llama3:8", 2).micro_batch_group, 8);
}

TEST(StagePartition, EvenLlama3AndExplicit) {
    EXPECT_EQ(make_stage_partition("even", 32, 4).layers, (std::vector<int>{8, 8, 8, 8}));
    EXPECT_EQ(make_stage_partition("even", 10, 4).layers, (std::vector<int>{2, 3, 3, 2}));
    auto llama = make_stage_partition("llama3", 126, 16); // Llama 3 405B
    EXPECT_EQ(llama.layers.front(), 7);
    EXPECT_EQ(llama.layers.back(), 7);
    EXPECT_EQ(llama.total_layers(), 126);
    for (std::size_t i = 1; i + 1 < llama.layers.size(); ++i)
        EXPECT_EQ(llama.layers[i], 8);
    EXPECT_EQ(make_stage_partition("llama3", 32, 4).total_layers(), 32);
    EXPECT_EQ(make_stage_partition("7,9,9,7", 32, 4).layers, (std::vector<int>{7, 9, 9, 7}));
    EXPECT_THROW(make_stage_partition("7,9,9", 32, 4), input_error);
    EXPECT_THROW(make_stage_partition("8,8,8,9", 32, 4), input_error);
    EXPECT_THROW(make_stage_partition("8,x,8,8", 32, 4), input_error);
    EXPECT_THROW(make_stage_partition("even", 3, 4), input_error);
}

// 1F1B with equal micro-batches and free communication: (M + P - 1)(tf + tb).
TEST(Simulator, OneFOneBClosedForm) {
    for (int pp : {1, 2, 3, 4, 8})
        for (int m : {1, 2, 3, 4, 7, 8, 16})
            for (int cp : {1, 2}) {
                fake_duration_model model;
                model.layers = 2 * pp;
                const std::int64_t tokens = 1024;
                layout l(2, cp, pp, 1);
                auto plan = build_step_plan(
                    l, make_step(1, cp, m, [&](int, int) { return tokens; }), model);
                auto r = simulate(plan);
                const double tf = 2 * model.linear_fwd_seconds(tokens / cp);
                const double tb = 2 * model.linear_bwd_seconds(tokens / cp);
                EXPECT_NEAR(r.step_seconds, (m + pp - 1) * (tf + tb), 1e-9)
                    << "pp=" << pp << " m=" << m << " cp=" << cp;
                check_invariants(plan, r);
            }
}

// Interleaved 1F1B: the bubble is (P - 1) / (V M) of the ideal M (tf + tb).
TEST(Simulator, InterleavedBubbleClosedForm) {
    for (int pp : {2, 3, 4, 8})
        for (int vpp : {2, 3, 4})
            for (int mult : {1, 2, 4}) {
                const int m = pp * mult;
                fake_duration_model model;
                model.layers = pp * vpp;
                const std::int64_t tokens = 512;
                layout l(1, 1, pp, 1, vpp);
                auto plan =
                    build_step_plan(l, make_step(1, 1, m, [&](int, int) { return tokens; }), model);
                auto r = simulate(plan);
                const double t = vpp * (model.linear_fwd_seconds(tokens) +
                                        model.linear_bwd_seconds(tokens)); // per micro-batch
                const double ideal = m * t;
                EXPECT_NEAR((r.step_seconds - ideal) / ideal, double(pp - 1) / (vpp * m), 1e-9)
                    << "pp=" << pp << " vpp=" << vpp << " m=" << m;
                check_invariants(plan, r);
            }
}

// Llama 3's schedule with more consecutive micro-batches than stages: same work, and never
// faster than the closed form of Megatron's order (its bubble is not smaller).
TEST(Simulator, Llama3ScheduleRunsEverySlot) {
    fake_duration_model model;
    model.layers = 8;
    layout l(1, 1, 4, 1, 2);
    plan_options o;
    o.schedule.micro_batch_group = 8;
    auto plan = build_step_plan(l, make_step(1, 1, 16, [](int, int) { return 256; }), model, o);
    auto r = simulate(plan);
    const double t = 2 * (model.linear_fwd_seconds(256) + model.linear_bwd_seconds(256));
    EXPECT_GE(r.step_seconds + tol, 16 * t * (1.0 + 3.0 / (2 * 16)));
    check_invariants(plan, r);
}

// CP peers advance at the pace of the slowest one, layer by layer: a stage takes
// L * (comm + max_c w_c) per micro-batch, not max_c (L * w_c) + ...
TEST(Simulator, CpGroupPacedBySlowestPeerEveryLayer) {
    fake_duration_model model;
    model.layers = 5;
    model.linear_seconds_per_token = 0.0;
    model.attention_seconds_per_pair = 1e-9;
    model.collective_seconds_each = 1e-4;
    layout l(1, 2, 1, 1);
    // One document per micro-batch, contiguous halves: the second CP rank has 3x the pairs.
    auto step = make_step(1, 2, 3, [](int, int m) { return 1000 * (m + 1); });
    auto plan = build_step_plan(l, step, model);
    auto r = simulate(plan);
    double expected = 0.0;
    for (const auto& mb : step.replicas[0]) {
        double wf = 0.0;
        for (const auto& s : mb.ranks)
            wf = std::max(wf, model.attention_fwd_seconds(s));
        const double c = model.collective_seconds_each;
        expected += model.layers * (c + wf) + model.layers * (c + model.bwd_ratio * wf);
    }
    EXPECT_NEAR(r.step_seconds, expected, 1e-9);
    check_invariants(plan, r);
    // The fast CP rank waits inside the all-gathers: its exposed communication is larger.
    const int fast = plan.unit_of(0, 0, 0), slow = plan.unit_of(1, 0, 0);
    EXPECT_GT(r.units[static_cast<std::size_t>(fast)].exposed_comm_seconds,
              r.units[static_cast<std::size_t>(slow)].exposed_comm_seconds);
}

// A slow rank's factor appears exactly on its group's critical path.
TEST(Simulator, SlowRankFactorShowsExactlyOnTheCriticalPath) {
    for (double factor : {1.25, 1.5, 2.0}) {
        fake_duration_model model;
        model.layers = 4;
        layout l(2, 2, 1, 2); // tp=2 cp=2 pp=1 dp=2
        auto step = make_step(2, 2, 3, [](int, int) { return 2048; });
        auto plan = build_step_plan(l, step, model);
        const auto base = simulate(plan);
        const int rank = l.rank_of({1, 1, 0, 1}); // TP rank 1 of CP rank 1 in replica 1
        const auto slow =
            simulate(plan, {parse_fault(fmt::format("slow-rank={}:{}", rank, factor))});
        EXPECT_NEAR(slow.step_seconds, factor * base.step_seconds, 1e-9);
        check_invariants(plan, slow);
        const int unit = plan.unit_of_rank(rank);
        double on_slow = 0.0;
        for (const auto& seg : slow.critical_path)
            if (seg.compute_unit == unit)
                on_slow += seg.to_seconds - seg.from_seconds;
        EXPECT_NEAR(on_slow, slow.step_seconds, 1e-9)
            << "every critical second paced by the slow unit";
    }
}

// One slow stage in 1F1B (free communication, uniform forward/backward ratio). When it is the
// last stage the pipeline runs at its pace after the fill: (P - 1) t + M f t exactly. Any slow
// stage s is bounded by s t + M f t (its own work after the fill above it) and (P - 1) t + M f t.
TEST(Simulator, SlowStageBottlenecksThePipeline) {
    for (int pp : {2, 4, 6})
        for (int m : {1, 4, 8})
            for (int s = 0; s < pp; ++s) {
                fake_duration_model model;
                model.layers = pp;
                layout l(1, 1, pp, 1);
                auto plan =
                    build_step_plan(l, make_step(1, 1, m, [](int, int) { return 100; }), model);
                const double f = 1.7;
                auto r = simulate(plan, {parse_fault(fmt::format("slow-stage={}:{}", s, f))});
                const double t = model.linear_fwd_seconds(100) + model.linear_bwd_seconds(100);
                const double upper = (pp - 1) * t + m * f * t;
                if (s == pp - 1) {
                    EXPECT_NEAR(r.step_seconds, upper, 1e-9) << "pp=" << pp << " m=" << m;
                }
                EXPECT_LE(r.step_seconds, upper + 1e-9);
                EXPECT_GE(r.step_seconds, s * t + m * f * t - 1e-9);
                const auto& slow = r.units[static_cast<std::size_t>(plan.unit_of(0, s, 0))];
                EXPECT_NEAR(slow.busy_seconds, m * f * t, 1e-9);
                check_invariants(plan, r);
            }
}

TEST(Simulator, HeavyMicroBatchAndSlowLink) {
    fake_duration_model model;
    model.layers = 2;
    model.p2p_seconds_each = 1e-5;
    layout l(1, 1, 2, 1);
    auto plan = build_step_plan(l, make_step(1, 1, 1, [](int, int) { return 1000; }), model);
    const auto base = simulate(plan);
    // One micro-batch through two stages: f0 + p2p + f1 + b1 + p2p + b0.
    const double t = model.linear_fwd_seconds(1000) + model.linear_bwd_seconds(1000);
    EXPECT_NEAR(base.step_seconds, 2 * t + 2e-5, 1e-12);
    EXPECT_NEAR(simulate(plan, {parse_fault("heavy-mb=0:3")}).step_seconds, 6 * t + 2e-5, 1e-12);
    EXPECT_NEAR(simulate(plan, {parse_fault("slow-link=0-1:4")}).step_seconds, 2 * t + 8e-5, 1e-12);
    EXPECT_THROW(simulate(plan, {parse_fault("heavy-mb=1:2")}), input_error);
    EXPECT_THROW(simulate(plan, {parse_fault("slow-rank=2:2")}), input_error);
}

TEST(Faults, ParseAndClearErrors) {
    auto f = parse_fault("slow-rank=5:1.3");
    EXPECT_EQ(f.what, fault::kind::slow_rank);
    EXPECT_EQ(f.rank, 5);
    EXPECT_DOUBLE_EQ(f.factor, 1.3);
    auto h = parse_fault("heavy-mb=2@1:1.5");
    EXPECT_EQ(h.micro_batch, 2);
    EXPECT_EQ(h.replica, 1);
    EXPECT_EQ(parse_fault("slow-link=3-7:2").other_rank, 7);
    const std::pair<const char*, const char*> bad[] = {{"slow-rank=5", "no ':'"},
                                                       {"slow-rank=x:1.3", "rank \"x\""},
                                                       {"slow-rank=5:0", "factor \"0\""},
                                                       {"slow-rank=5:-1", "factor"},
                                                       {"fast-rank=5:2", "unknown fault"},
                                                       {"slow-link=3:2", "A-B"},
                                                       {"slow-link=3-3:2", "two different"},
                                                       {"slow-rank", "no '='"}};
    for (auto [spec, part] : bad) {
        try {
            parse_fault(spec);
            ADD_FAILURE() << spec;
        } catch (const input_error& e) {
            EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
        }
    }
    layout l(2, 2, 2, 1);
    EXPECT_THROW(validate_fault(parse_fault("slow-rank=8:2"), l), input_error);
    EXPECT_THROW(validate_fault(parse_fault("slow-stage=2:2"), l), input_error);
    EXPECT_THROW(validate_fault(parse_fault("heavy-mb=0@1:2"), l), input_error);
    EXPECT_NO_THROW(validate_fault(parse_fault("slow-link=0-1:2"), l)); // TP peers
    EXPECT_NO_THROW(validate_fault(parse_fault("slow-link=0-4:2"), l)); // PP neighbours
    EXPECT_THROW(validate_fault(parse_fault("slow-link=0-7:2"), l), input_error);
}

// Random variable-length batches, faults and layouts: every dependency holds.
TEST(Simulator, RandomPlansKeepEveryDependency) {
    std::mt19937_64 rng(7);
    for (int trial = 0; trial < 40; ++trial) {
        const int pp = 1 + static_cast<int>(rng() % 4), cp = 1 + static_cast<int>(rng() % 3);
        const int dp = 1 + static_cast<int>(rng() % 2),
                  vpp = pp > 1 ? 1 + static_cast<int>(rng() % 2) : 1;
        const int m = pp * (1 + static_cast<int>(rng() % 3));
        fake_duration_model model;
        model.layers = pp * vpp * 2;
        model.attention_seconds_per_pair = 1e-10;
        model.collective_seconds_each = 1e-5;
        model.p2p_seconds_each = 2e-5;
        model.output_seconds_per_token = 1e-7;
        model.optimizer_seconds_each = 1e-4;
        model.layer_params = 1e7;
        layout l(2, cp, pp, dp, vpp);
        auto step = make_step(
            dp, cp, m, [&](int, int) { return 500 + static_cast<std::int64_t>(rng() % 5000); });
        plan_options o;
        o.bucket_params = 1.5e7;
        o.overlap_grad_reduce = trial % 2 == 0;
        auto plan = build_step_plan(l, step, model, o);
        std::vector<fault> faults;
        if (trial % 3 == 0)
            faults.push_back(parse_fault(
                fmt::format("slow-rank={}:1.4", static_cast<int>(rng() % l.world_size()))));
        auto r = simulate(plan, faults);
        check_invariants(plan, r);
    }
}

// Real durations (the cost model, communication included) on steps packed by the packers and
// sharded by every CP sharder, under random faults: every dependency still holds.
TEST(Simulator, CostModelPlansOfPackedAndShardedStepsKeepEveryDependency) {
    std::mt19937_64 rng(11);
    const tuner::sharding_policy policies[] = {
        tuner::sharding_policy::per_seq, tuner::sharding_policy::per_doc,
        tuner::sharding_policy::adaptive, tuner::sharding_policy::hybrid};
    const layout layouts[] = {layout(2, 2, 4, 1), layout(4, 4, 2, 2), layout(2, 2, 2, 1, 2)};
    int plans = 0;
    for (std::size_t li = 0; li < std::size(layouts); ++li) {
        const layout& l = layouts[li];
        const tuner::cost_model costs(runtime::model_preset("550m"),
                                      tuner::hardware_preset("h100-sxm"), l);
        const tuner::cost_duration_model durations(costs);
        tuner::stream_options so;
        so.context_tokens = 32768;
        auto stream = tuner::open_document_stream("synthetic:wlbllm?n=3000&seed=9", so);
        tuner::packing_config pc;
        pc.policy = li % 2 == 0 ? tuner::packing_policy::wlb : tuner::packing_policy::plain;
        pc.context_tokens = 32768;
        pc.replicas = l.dp();
        pc.micro_batches = 2 * l.pp();
        pc.smax_tokens = tuner::default_smax(32768);
        pc.thresholds = tuner::default_thresholds(2, 32768);
        for (auto policy : policies) {
            tuner::sharding_spec spec;
            spec.policy = policy;
            const auto sharder = tuner::make_sharder(spec, costs);
            tuner::pack_stream(stream, pc, costs, 3, [&](const global_batch& b) {
                sharded_step step;
                step.step = b.step;
                for (const auto& rep : b.replicas) {
                    auto& r = step.replicas.emplace_back();
                    for (const auto& mb : rep.micro_batches)
                        r.push_back(sharder->shard(mb).sharded);
                }
                plan_options o;
                o.overlap_grad_reduce = rng() % 2 == 0;
                const auto plan = build_step_plan(l, step, durations, o);
                std::vector<fault> faults;
                const int world = l.world_size();
                switch (rng() % 4) {
                case 0:
                    faults.push_back(parse_fault(
                        fmt::format("slow-rank={}:1.3", static_cast<int>(rng() % world))));
                    break;
                case 1:
                    faults.push_back(parse_fault("slow-link=0-1:3")); // TP peers
                    break;
                case 2:
                    faults.push_back(parse_fault("heavy-mb=1:2"));
                    break;
                default:
                    break;
                }
                for (const auto& f : faults)
                    validate_fault(f, l);
                const auto r = simulate(plan, faults);
                check_invariants(plan, r);
                ++plans;
            });
        }
    }
    EXPECT_EQ(plans, 3 * 4 * 3);
}

} // namespace
} // namespace wlb::runtime
