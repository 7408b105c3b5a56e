// The candidate evaluator (tuner/search/evaluate.hpp): closed forms when every micro-batch is
// equal, equality with packing + sharding + simulate_job run by hand, determinism, common random
// numbers, the expected order of plain + per-seq and wlb + adaptive on a long-tailed source,
// and clear errors.
#include "base/error.hpp"
#include "runtime/model/model_spec.hpp"
#include "runtime/plan/step_plan.hpp"
#include "support/fake_duration_model.hpp"
#include "tuner/cost/cost_model.hpp"
#include "tuner/cost/hardware.hpp"
#include "tuner/data/document_stream.hpp"
#include "tuner/packing/pack_run.hpp"
#include "tuner/search/evaluate.hpp"
#include "tuner/search/simulate_job.hpp"
#include "tuner/sharding/make_sharder.hpp"

#include <gtest/gtest.h>

namespace wlb::tuner {
namespace {

// Documents of exactly `tokens` each: plain packing puts one per micro-batch, so every
// micro-batch of every step is the same.
document_set equal_documents(std::int64_t count, std::int64_t tokens) {
    document_set set;
    for (std::int64_t i = 0; i < count; ++i)
        set.documents.push_back({i, tokens, 0});
    set.tokens = count * tokens;
    set.complete = true;
    return set;
}

cost_model costs_for(const char* model, const runtime::layout& l) {
    return cost_model(runtime::model_preset(model), hardware_preset("h100-sxm"), l);
}

evaluation_config plain_per_seq(const runtime::layout& l, std::int64_t context, int micro_batches,
                                std::int64_t steps) {
    evaluation_config c;
    packing_knobs k;
    k.policy = "plain";
    k.context_tokens = context;
    k.micro_batches = micro_batches;
    c.packing = make_packing_config(k, l);
    c.sharding.policy = sharding_policy::per_seq;
    c.steps = steps;
    return c;
}

// Per-layer forward seconds of one CP rank on one micro-batch of a single n-token document cut
// per sequence into 2*cp chunks (n divisible by 2*cp): every rank holds n/cp tokens and
// causal_pairs(n)/cp pairs (chunks i and 2cp-1-i pair up to equal work).
double fake_layer_fwd(const test::fake_duration_model& f, std::int64_t n, int cp) {
    return f.linear_fwd_seconds(n / cp) +
           f.attention_seconds_per_pair * static_cast<double>(runtime::causal_pairs(n)) / cp;
}

// 1F1B with equal micro-batches and free communication: (M + P - 1)(tf + tb) per step, for
// every step, through packing, sharding and the simulator.
TEST(Evaluate, EqualMicroBatchesGiveTheOneFOneBClosedForm) {
    const std::int64_t n = 4096;
    for (int pp : {1, 2, 4})
        for (int cp : {1, 2, 4})
            for (int dp : {1, 2})
                for (int m : {1, 3, 8}) {
                    const runtime::layout l(2, cp, pp, dp);
                    const auto costs = costs_for("550m", l);
                    test::fake_duration_model fake;
                    fake.layers = 2 * pp;
                    fake.attention_seconds_per_pair = 1e-12;
                    auto c = plain_per_seq(l, n, m, 3);
                    c.durations = &fake;
                    const auto e = evaluate(costs, equal_documents(64 * dp, n), c);
                    ASSERT_EQ(e.step_seconds.size(), 3u);
                    const double per_layer = fake_layer_fwd(fake, n, cp);
                    const double tf = 2 * per_layer, tb = fake.bwd_ratio * tf; // 2 layers/stage
                    for (double s : e.step_seconds)
                        EXPECT_NEAR(s, (m + pp - 1) * (tf + tb), 1e-12)
                            << "pp=" << pp << " cp=" << cp << " dp=" << dp << " m=" << m;
                    EXPECT_NEAR(e.mean_step_seconds, (m + pp - 1) * (tf + tb), 1e-12);
                    EXPECT_DOUBLE_EQ(e.packing.imbalance.max, 1.0);
                }
}

// Interleaved 1F1B: the bubble is (P - 1) / (V M) of the ideal M (tf + tb).
TEST(Evaluate, EqualMicroBatchesGiveTheInterleavedClosedForm) {
    const std::int64_t n = 2048;
    for (int pp : {2, 4})
        for (int vpp : {2, 3})
            for (int mult : {1, 2}) {
                const int m = pp * mult;
                const runtime::layout l(1, 2, pp, 1, vpp);
                const auto costs = costs_for("550m", l);
                test::fake_duration_model fake;
                fake.layers = pp * vpp;
                auto c = plain_per_seq(l, n, m, 2);
                c.durations = &fake;
                const auto e = evaluate(costs, equal_documents(64, n), c);
                const double t = vpp * (1 + fake.bwd_ratio) * fake_layer_fwd(fake, n, 2);
                const double ideal = m * t;
                for (double s : e.step_seconds)
                    EXPECT_NEAR((s - ideal) / ideal, double(pp - 1) / (vpp * m), 1e-9)
                        << "pp=" << pp << " vpp=" << vpp << " m=" << m;
            }
}

document_set long_tailed(std::int64_t context, std::int64_t steps, const runtime::layout& l) {
    stream_options so;
    so.context_tokens = context;
    auto stream = open_document_stream("synthetic:mixture?mu=7.5&sigma=1.2&weight=0.02&xmin=16384"
                                       "&alpha=0.8&n=200000&seed=7&max=131072",
                                       so);
    return materialize_documents(stream, tokens_for_steps(steps, context * l.pp() * l.dp()));
}

evaluation_config wlb_adaptive(const runtime::layout& l, std::int64_t context, std::int64_t steps) {
    evaluation_config c;
    packing_knobs k;
    k.policy = "wlb";
    k.context_tokens = context;
    c.packing = make_packing_config(k, l);
    c.sharding.policy = sharding_policy::adaptive;
    c.steps = steps;
    return c;
}

// The same documents and configuration give bit-identical results, also through a second
// cost model object; a trace does not change the figures.
TEST(Evaluate, SameInputsGiveIdenticalResults) {
    const runtime::layout l(8, 2, 4, 1);
    const std::int64_t context = 131072;
    const auto docs = long_tailed(context, 16, l);
    const auto costs = costs_for("7b", l);
    const auto other = costs_for("7b", l);
    auto c = wlb_adaptive(l, context, 16);
    const auto a = evaluate(costs, docs, c);
    c.keep_trace = true;
    const auto b = evaluate(other, docs, c);
    ASSERT_EQ(a.step_seconds.size(), 16u);
    EXPECT_EQ(a.step_seconds, b.step_seconds);
    EXPECT_EQ(a.total_seconds, b.total_seconds);
    EXPECT_EQ(a.packing.imbalance.mean, b.packing.imbalance.mean);
    EXPECT_EQ(a.packing.delay_token_iterations, b.packing.delay_token_iterations);
    EXPECT_EQ(a.sharding.predicted_seconds, b.sharding.predicted_seconds);
    EXPECT_EQ(a.sharding.applied, b.sharding.applied);
    EXPECT_EQ(a.documents_drawn, b.documents_drawn);
    ASSERT_EQ(a.steps.size(), b.steps.size());
    for (std::size_t i = 0; i < a.steps.size(); ++i) {
        EXPECT_EQ(a.steps[i].bubble_fraction, b.steps[i].bubble_fraction);
        EXPECT_EQ(a.steps[i].critical_path, b.steps[i].critical_path);
    }
    EXPECT_TRUE(a.trace.ranks.empty());
    EXPECT_EQ(b.trace.ranks.size(), static_cast<std::size_t>(l.world_size()));
    EXPECT_FALSE(a.documents_exhausted);
}

// Equal to packing, sharding and simulate_job run one after the other by hand on the same
// documents: the evaluator adds no model of its own.
TEST(Evaluate, EqualsPackThenShardThenSimulateJob) {
    const runtime::layout l(8, 2, 4, 1);
    const std::int64_t context = 131072, steps = 8;
    const auto costs = costs_for("7b", l);
    for (auto [packing, sharding] :
         {std::pair{"wlb", sharding_policy::adaptive}, std::pair{"plain", sharding_policy::per_seq},
          std::pair{"fixed-greedy", sharding_policy::hybrid}}) {
        stream_options so;
        so.context_tokens = context;
        auto stream = open_document_stream("synthetic:wlbllm?n=20000&seed=3", so);
        const auto docs = materialize_documents(stream, 0);
        packing_knobs k;
        k.policy = packing;
        k.context_tokens = context;
        k.window = 2;
        evaluation_config c;
        c.packing = make_packing_config(k, l);
        c.sharding.policy = sharding;
        c.steps = steps;
        const auto e = evaluate(costs, docs, c);

        std::vector<runtime::sharded_step> by_hand;
        const auto sharder = make_sharder(c.sharding, costs);
        pack_stream(stream, c.packing, costs, steps, [&](const runtime::global_batch& b) {
            auto& s = by_hand.emplace_back();
            s.step = b.step;
            for (const auto& rep : b.replicas) {
                auto& r = s.replicas.emplace_back();
                for (const auto& mb : rep.micro_batches)
                    r.push_back(sharder->shard(mb).sharded);
            }
        });
        const auto job = simulate_job(costs, by_hand, {});
        ASSERT_EQ(e.steps.size(), job.steps.size()) << packing;
        for (std::size_t i = 0; i < job.steps.size(); ++i)
            EXPECT_EQ(e.step_seconds[i], job.steps[i].step_seconds) << packing << " step " << i;
        EXPECT_EQ(e.total_seconds, job.total_seconds);
    }
}

// On a long-tailed source, WLB-LLM's packing and adaptive CP sharding are predicted no slower
// than Megatron's plain packing with per-sequence sharding, and better balanced.
TEST(Evaluate, WlbAdaptiveNotSlowerThanPlainPerSeqOnALongTail) {
    const runtime::layout l(8, 2, 4, 1);
    const std::int64_t context = 131072, steps = 32;
    const auto docs = long_tailed(context, steps, l);
    const auto costs = costs_for("7b", l);
    const auto plain = evaluate(costs, docs, plain_per_seq(l, context, 0, steps));
    const auto wlb = evaluate(costs, docs, wlb_adaptive(l, context, steps));
    ASSERT_EQ(plain.steps.size(), static_cast<std::size_t>(steps));
    ASSERT_EQ(wlb.steps.size(), static_cast<std::size_t>(steps));
    EXPECT_LE(wlb.mean_step_seconds, plain.mean_step_seconds);
    EXPECT_LT(wlb.packing.imbalance.mean, plain.packing.imbalance.mean);
    EXPECT_EQ(plain.packing.delay_iterations.max, 0.0); // plain never delays
    EXPECT_GT(wlb.sharding.applied[static_cast<std::size_t>(sharding_policy::per_doc)], 0);
}

// Common random numbers: every candidate draws from the start of the same set, and a run that
// outgrows the set says so.
TEST(Evaluate, DocumentSetIsReplayedAndExhaustionIsReported) {
    const runtime::layout l(1, 1, 2, 1);
    const auto costs = costs_for("550m", l);
    stream_options so;
    so.context_tokens = 8192;
    auto stream = open_document_stream("synthetic:lognormal?mu=7&n=500&seed=2&max=8192", so);
    const auto all = materialize_documents(stream, 0);
    EXPECT_TRUE(all.complete);
    EXPECT_EQ(all.documents.size(), 500u);
    const auto part = materialize_documents(stream, 20 * 8192);
    EXPECT_FALSE(part.complete);
    EXPECT_GE(part.tokens, 20 * 8192);
    EXPECT_LT(part.tokens - part.documents.back().tokens, 20 * 8192);
    for (std::size_t i = 0; i < part.documents.size(); ++i)
        EXPECT_EQ(part.documents[i].tokens, all.documents[i].tokens);

    auto c = plain_per_seq(l, 8192, 0, 1000);
    const auto e = evaluate(costs, part, c);
    EXPECT_TRUE(e.documents_exhausted);
    EXPECT_LE(e.steps.size(), 11u); // 20 contexts of tokens hold at most 10 full steps + a tail
    EXPECT_EQ(e.documents_drawn, static_cast<std::int64_t>(part.documents.size()));
    c.steps = 2;
    const auto f = evaluate(costs, part, c);
    EXPECT_FALSE(f.documents_exhausted);
    EXPECT_EQ(f.steps.size(), 2u);
    EXPECT_EQ(f.step_seconds[0], e.step_seconds[0]);
    EXPECT_EQ(f.step_seconds[1], e.step_seconds[1]);
}

TEST(Evaluate, BadConfigurationsAreInputErrors) {
    const runtime::layout l(2, 2, 2, 2);
    const auto costs = costs_for("550m", l);
    const auto docs = equal_documents(32, 4096);
    auto c = plain_per_seq(l, 4096, 0, 2);
    c.packing.replicas = 1;
    EXPECT_THROW(evaluate(costs, docs, c), input_error);
    c = plain_per_seq(l, 4096, 0, 2);
    c.faults.push_back(runtime::parse_fault("slow-rank=99:2"));
    EXPECT_THROW(evaluate(costs, docs, c), input_error);
    packing_knobs k;
    k.policy = "nope";
    EXPECT_THROW(make_packing_config(k, l), input_error);
    k.policy = "wlb";
    k.smax = "0.5x";
    EXPECT_THROW(make_packing_config(k, l), input_error);
    k.smax = "1.5x";
    k.thresholds = "64k,24k";
    EXPECT_THROW(make_packing_config(k, l), input_error);
    k.thresholds = "";
    k.window = 0;
    EXPECT_THROW(make_packing_config(k, l), input_error);
    k.window = 1;
    EXPECT_EQ(make_packing_config(k, l).micro_batches, 2); // the layout's pp
    EXPECT_EQ(make_packing_config(k, l).replicas, 2);      // the layout's dp
}

TEST(Evaluate, CandidateNames) {
    packing_config p;
    p.policy = packing_policy::plain;
    sharding_spec s;
    s.policy = sharding_policy::per_seq;
    EXPECT_EQ(describe_candidate(p, s), "plain + per-seq");
    s.policy = sharding_policy::hybrid;
    s.hybrid_threshold_tokens = 16384;
    EXPECT_EQ(describe_candidate(p, s), "plain + hybrid >=16384");
}

} // namespace
} // namespace wlb::tuner
