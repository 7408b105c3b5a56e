// The tuner (tuner/search/tune.hpp) and what it stands on: the memory model's closed forms, the
// step budget held at another number of micro-batches, the search space, the tuned config's round
// trip, and the search's guarantees (never predicted worse than the baselines and the paper's
// settings, constraints met, deterministic whatever the threads, the speedup holding out of
// sample).
#include "base/error.hpp"
#include "tuner/cost/cost_model.hpp"
#include "tuner/cost/memory_model.hpp"
#include "tuner/data/document_stream.hpp"
#include "tuner/data/open_document_source.hpp"
#include "tuner/data/synthetic_source.hpp"
#include "tuner/packing/pack_run.hpp"
#include "tuner/search/evaluate.hpp"
#include "tuner/search/tune.hpp"
#include "tuner/search/tune_space.hpp"
#include "tuner/search/tuned_config_report.hpp"

#include <cmath>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using namespace wlb;

namespace {

// ---- memory model ----

TEST(MemoryModel, ActivationBytesFollowTheLayerTermByTerm) {
    const auto m = runtime::model_preset("7b");
    const tuner::memory_model mem(m, runtime::layout(8, 2, 4, 1),
                                  tuner::hardware_preset("h100-sxm"));
    // (10 h + 4 kv + 6 f) / tp with h = kv = 4096, f = 11008, tp = 8
    EXPECT_DOUBLE_EQ(mem.activation_bytes_per_token_layer(),
                     (10.0 * 4096 + 4.0 * 4096 + 6.0 * 11008) / 8.0);
    // 1F1B: stage p holds min(M, P - p) micro-batches
    EXPECT_EQ(mem.in_flight(0, 4), 4);
    EXPECT_EQ(mem.in_flight(3, 4), 1);
    EXPECT_EQ(mem.in_flight(0, 2), 2);
    EXPECT_EQ(mem.in_flight(1, 8), 3);
}

TEST(MemoryModel, ActivationsOfTheFirstStageAreTheStepBudgetAtPpMicroBatches) {
    const auto m = runtime::model_preset("7b");
    const runtime::layout l(8, 2, 4, 1);
    const tuner::memory_model mem(m, l, tuner::hardware_preset("h100-sxm"));
    const std::int64_t c = 131072;
    // With M = P every micro-batch of the step is in flight on stage 0, so its activations are
    // the whole replica budget whatever S_max is: 8 layers x 4C / cp tokens.
    for (std::int64_t smax : {c, 3 * c / 2, 2 * c}) {
        const auto e = mem.estimate(smax, 4, 4 * c);
        EXPECT_DOUBLE_EQ(e.stages[0].activation_bytes,
                         8.0 * (4.0 * c / 2.0) * mem.activation_bytes_per_token_layer());
    }
    // Static memory: weights + gradients (6 bytes) + optimizer (12 bytes / (dp x cp)).
    const double params0 = 8 * m.layer_params() / 8 + 32000.0 * 4096 / 8;
    EXPECT_DOUBLE_EQ(mem.static_bytes(0), params0 * (6.0 + 12.0 / 2.0));
}

TEST(MemoryModel, MaxLimitIsTheLargestThatFits) {
    const tuner::memory_model mem(runtime::model_preset("70b"), runtime::layout(16, 4, 4, 1),
                                  tuner::hardware_preset("h100-sxm"));
    const std::int64_t c = 131072;
    for (int mbs : {4, 8, 16}) {
        const auto cap = mem.max_limit_tokens(mbs, 4 * c, 1.0, 1024);
        ASSERT_GT(cap, 0);
        EXPECT_EQ(cap % 1024, 0);
        EXPECT_TRUE(mem.estimate(cap, mbs, 4 * c).fits());
        if (cap < 4 * c) {
            EXPECT_FALSE(mem.estimate(cap + 1024, mbs, 4 * c).fits()) << mbs;
        }
    }
    // A smaller device caps lower.
    tuner::memory_options small;
    small.memory_gbytes = 60;
    const tuner::memory_model tight(runtime::model_preset("70b"), runtime::layout(16, 4, 4, 1),
                                    tuner::hardware_preset("h100-sxm"), small);
    EXPECT_LE(tight.max_limit_tokens(8, 4 * c), mem.max_limit_tokens(8, 4 * c));
}

// ---- the step budget at another number of micro-batches ----

TEST(PackingBudget, ValidationNamesTheField) {
    tuner::packing_config c;
    c.policy = tuner::packing_policy::plain;
    c.context_tokens = 1024;
    c.micro_batches = 8;
    c.budget_tokens = 4 * 1024;
    EXPECT_THROW(tuner::validate(c), input_error); // fixed-length: budget must be the product
    c.policy = tuner::packing_policy::wlb;
    c.smax_tokens = 1024;
    c.budget_tokens = 9 * 1024; // more than 8 micro-batches of S_max hold
    EXPECT_THROW(tuner::validate(c), input_error);
    c.budget_tokens = 4 * 1024;
    EXPECT_NO_THROW(tuner::validate(c));
    const auto back = tuner::packing_config_from_json(tuner::to_json(c), "x.json");
    EXPECT_EQ(back.budget_tokens, c.budget_tokens);
    EXPECT_EQ(back.step_tokens(), 4 * 1024);
}

TEST(PackingBudget, VariableLengthPackersHoldTheBudgetOverMoreMicroBatches) {
    const tuner::cost_model costs(runtime::model_preset("7b"), tuner::hardware_preset("h100-sxm"),
                                  runtime::layout(8, 2, 4, 1));
    for (auto policy : {tuner::packing_policy::varlen, tuner::packing_policy::wlb}) {
        tuner::packing_config c;
        c.policy = policy;
        c.context_tokens = 8192;
        c.micro_batches = 8;
        c.smax_tokens = 8192;
        c.budget_tokens = 4 * 8192; // the budget of 4 micro-batches of the context
        c.thresholds = {2048, 4096};
        auto stream = tuner::open_document_stream("synthetic:lognormal?mu=6.5&sigma=1.2&n=4000"
                                                  "&max=8192&seed=3",
                                                  {.context_tokens = 8192});
        std::int64_t steps = 0;
        const auto r =
            tuner::pack_stream(stream, c, costs, 60, [&](const runtime::global_batch& b) {
                std::int64_t tokens = 0;
                ASSERT_EQ(b.replicas.at(0).micro_batches.size(), 8u);
                for (const auto& mb : b.replicas[0].micro_batches) {
                    EXPECT_LE(mb.tokens(), 8192);
                    tokens += mb.tokens();
                }
                EXPECT_LE(tokens, 4 * 8192);
                ++steps;
            });
        EXPECT_EQ(steps, 60);
        // The step is filled to within one document of the budget, as with pp micro-batches.
        EXPECT_GT(r.summary.mean_step_tokens, 0.95 * 4 * 8192);
    }
}

// ---- search space ----

TEST(TuneSpace, ThresholdsSitAtLengthQuantiles) {
    std::vector<std::int64_t> lengths;
    for (std::int64_t i = 1; i <= 1000; ++i)
        lengths.push_back(i * 100); // p95 = 95000, p99 = 99000
    const double f[] = {0.95, 0.99, 0.999};
    const auto t = tuner::quantile_thresholds(lengths, f, 131072, 1024);
    ASSERT_EQ(t.size(), 3u);
    EXPECT_EQ(t[0], 95232); // 95000 rounded up to 1K
    EXPECT_EQ(t[1], 99328);
    EXPECT_EQ(t[2], 100352); // 99900
    // Values at or above the context are dropped.
    EXPECT_TRUE(tuner::quantile_thresholds(lengths, f, 90000, 1024).empty());
}

tuner::search_space small_space(bool vary = true) {
    std::vector<std::int64_t> lengths;
    tuner::synthetic_source src(tuner::parse_synthetic_spec("wlbllm?n=5000&seed=2"));
    while (auto x = src.next())
        lengths.push_back(std::min<std::int64_t>(*x, 131072));
    std::sort(lengths.begin(), lengths.end());
    const runtime::layout l(8, 2, 4, 1);
    const tuner::memory_model mem(runtime::model_preset("7b"), l,
                                  tuner::hardware_preset("h100-sxm"));
    return tuner::make_search_space(l, 131072, lengths, mem, vary);
}

TEST(TuneSpace, EveryCandidateIsValidAndHoldsTheStepBudget) {
    const auto s = small_space();
    ASSERT_EQ(s.micro_batches, (std::vector<int>{4, 8, 16}));
    const auto coarse = tuner::coarse_packings(s, {tuner::sharding_policy::adaptive, {}});
    EXPECT_GT(coarse.size(), 20u);
    std::mt19937_64 rng(7);
    auto all = coarse;
    for (auto& c : tuner::random_packings(s, {tuner::sharding_policy::adaptive, {}}, 20, rng))
        all.push_back(c);
    for (const auto& c : all) {
        EXPECT_NO_THROW(tuner::validate(c.packing)) << tuner::candidate_name(c);
        EXPECT_EQ(c.packing.step_tokens(), 4 * 131072) << tuner::candidate_name(c);
        EXPECT_LE(c.packing.thresholds.size(), 3u);
        const auto i = s.micro_batch_index(c.packing.micro_batches);
        ASSERT_GE(i, 0);
        EXPECT_LE(c.packing.micro_batch_limit(), s.smax_cap_tokens[static_cast<std::size_t>(i)]);
        for (const auto& n : tuner::packing_neighbours(s, c)) {
            EXPECT_NO_THROW(tuner::validate(n.packing));
            EXPECT_EQ(n.packing.step_tokens(), 4 * 131072);
            EXPECT_NE(tuner::candidate_key(n), tuner::candidate_key(c));
        }
    }
    const auto fixed = small_space(false);
    EXPECT_EQ(fixed.micro_batches, (std::vector<int>{4}));
}

TEST(TuneSpace, PaperCandidateIsWlbTwoQueuesAdaptive) {
    const auto s = small_space();
    const auto p = tuner::paper_candidate(s);
    EXPECT_EQ(p.packing.policy, tuner::packing_policy::wlb);
    EXPECT_EQ(p.packing.thresholds, tuner::default_thresholds(2, 131072));
    EXPECT_EQ(p.packing.micro_batch_limit(), tuner::default_smax(131072));
    EXPECT_EQ(p.packing.micro_batches, 4);
    EXPECT_EQ(p.sharding.policy, tuner::sharding_policy::adaptive);
    const auto plain = tuner::plain_candidate(s);
    EXPECT_EQ(plain.packing.policy, tuner::packing_policy::plain);
    EXPECT_EQ(plain.sharding.policy, tuner::sharding_policy::per_seq);
}

TEST(TuneParse, Seconds) {
    EXPECT_DOUBLE_EQ(tuner::parse_seconds("60s", "--time-budget"), 60.0);
    EXPECT_DOUBLE_EQ(tuner::parse_seconds("90", "--time-budget"), 90.0);
    EXPECT_DOUBLE_EQ(tuner::parse_seconds("1.5m", "--time-budget"), 90.0);
    EXPECT_DOUBLE_EQ(tuner::parse_seconds("500ms", "--time-budget"), 0.5);
    for (const char* bad : {"", "s", "-3s", "abc", "10x", "0"})
        EXPECT_THROW((void)tuner::parse_seconds(bad, "--time-budget"), input_error) << bad;
}

// ---- the search ----

struct workload {
    tuner::cost_model costs;
    std::int64_t context;
    tuner::document_set documents;
};

// A small job that simulates fast: 7B at 32K context, tp=8,cp=2,pp=4, WLB-LLM-shaped lengths
// scaled to the context (mixture: a lognormal bulk and a Pareto tail).
workload make_workload(std::int64_t documents, std::uint64_t seed) {
    const std::int64_t context = 32768;
    tuner::cost_model costs(runtime::model_preset("7b"), tuner::hardware_preset("h100-sxm"),
                            runtime::layout(8, 2, 4, 1));
    auto stream = tuner::open_document_stream(
        fmt::format("synthetic:mixture?mu=6.6&sigma=1.1&weight=0.02&xmin=4096&alpha=1.1&n={}"
                    "&seed={}&max=32768",
                    documents, seed),
        {.context_tokens = context});
    auto set = tuner::materialize_documents(stream, 0);
    return {std::move(costs), context, std::move(set)};
}

tuner::tune_options quick_options(int threads) {
    tuner::tune_options o;
    o.threads = threads;
    o.time_budget_seconds = 3600; // never the limit here: results must be deterministic
    o.sample_steps = 48;
    o.max_sample_steps = 48;
    o.random_points = 4;
    o.sharding_finalists = 2;
    o.climbers = 2;
    return o;
}

// One search shared by the tests that only read its result.
const workload& shared_workload() {
    static const workload w = make_workload(12000, 11);
    return w;
}
const tuner::tune_result& shared_result() {
    static const tuner::tune_result r =
        tuner::tune(shared_workload().costs, shared_workload().context, shared_workload().documents,
                    quick_options(2));
    return r;
}

TEST(Tune, NeverPredictedWorseThanTheBaselinesAndMeetsTheConstraints) {
    const auto& r = shared_result();
    ASSERT_TRUE(r.winner.feasible);
    EXPECT_EQ(r.sample_steps, 48);
    EXPECT_EQ(r.winner.steps, 48);
    EXPECT_TRUE(r.plain.feasible);
    EXPECT_LE(r.winner.mean_step_seconds, r.plain.mean_step_seconds);
    if (r.paper.feasible) {
        EXPECT_LE(r.winner.mean_step_seconds, r.paper.mean_step_seconds);
    }
    if (r.fixed_greedy.feasible) {
        EXPECT_LE(r.winner.mean_step_seconds, r.fixed_greedy.mean_step_seconds);
    }
    EXPECT_LE(r.winner.delay_mean, 0.5);
    EXPECT_GE(r.winner.mean_step_tokens, 0.99 * static_cast<double>(r.winner.step_budget_tokens));
    for (const auto& x : r.runners_up) {
        EXPECT_TRUE(x.feasible);
        EXPECT_GE(x.mean_step_seconds, r.winner.mean_step_seconds);
    }
    // The knob table reverts one knob at a time from the winner; reverting all of the packing
    // is plain packing with the winner's sharding.
    for (const auto& k : r.knobs)
        EXPECT_NEAR(k.slowdown, k.without.mean_step_seconds / r.winner.mean_step_seconds, 1e-12);
    EXPECT_GT(r.evaluations, 20);
    EXPECT_FALSE(r.stopped_by_budget);
}

TEST(Tune, DelayBudgetIsRespected) {
    const auto w = make_workload(12000, 12);
    auto o = quick_options(2);
    o.constraints.max_mean_delay = 0.05;
    o.constraints.max_delay_steps = 1;
    o.constraints.memory_gbytes = 13.0; // plain needs about 10.7 GB here (memory model)
    const auto r = tuner::tune(w.costs, w.context, w.documents, o);
    ASSERT_TRUE(r.winner.feasible);
    EXPECT_LE(r.winner.delay_mean, 0.05);
    EXPECT_LE(r.winner.delay_max, 1.0);
    EXPECT_LE(r.winner.memory_peak_gbytes, 13.0 * 0.9);
    for (const auto& x : r.runners_up)
        EXPECT_LE(x.memory_peak_gbytes, 13.0 * 0.9) << x.name;
    EXPECT_TRUE(r.notes.empty() || r.notes.front().find("memory") == std::string::npos);
    // The paper's 2 queues delay more than 0.05 iterations on this data.
    EXPECT_FALSE(r.paper.feasible);
    EXPECT_NE(r.paper.infeasible.find("delay"), std::string::npos) << r.paper.infeasible;
}

TEST(Tune, DeterministicWhateverTheThreads) {
    const auto w = make_workload(12000, 13);
    const auto one = tuner::tune(w.costs, w.context, w.documents, quick_options(1));
    const auto two = tuner::tune(w.costs, w.context, w.documents, quick_options(2));
    EXPECT_EQ(tuner::candidate_key(one.winner.config), tuner::candidate_key(two.winner.config));
    EXPECT_EQ(one.winner.mean_step_seconds, two.winner.mean_step_seconds);
    EXPECT_EQ(one.evaluations, two.evaluations);
    ASSERT_EQ(one.runners_up.size(), two.runners_up.size());
    for (std::size_t i = 0; i < one.runners_up.size(); ++i)
        EXPECT_EQ(one.runners_up[i].name, two.runners_up[i].name);
}

// Acceptance (issue [tuner]): tune on the first half of the documents, evaluate on the second
// half; the predicted speedup over plain + per-seq holds within 2%.
TEST(Tune, SpeedupHoldsOutOfSample) {
    const auto w = make_workload(80000, 21);
    const auto& all = w.documents.documents;
    tuner::document_set first, second;
    const auto half = all.size() / 2;
    for (std::size_t i = 0; i < all.size(); ++i) {
        auto d = all[i];
        auto& set = i < half ? first : second;
        d.id = static_cast<std::int64_t>(set.documents.size()); // stream positions of the half
        set.documents.push_back(d);
        set.tokens += d.tokens;
    }
    first.complete = second.complete = true;
    auto o = quick_options(2);
    o.sample_steps = 0; // the tuner's own choice of sample
    o.max_sample_steps = 256;
    const auto r = tuner::tune(w.costs, w.context, first, o);
    const auto in_sample = r.speedup_over(r.plain);
    ASSERT_GT(in_sample, 1.0);

    const tuner::memory_model mem(w.costs.model(), w.costs.layout(), w.costs.hardware());
    const auto steps = tuner::available_steps(second, r.space.step_tokens());
    ASSERT_GE(steps, r.sample_steps);
    const auto won =
        tuner::evaluate_candidate(w.costs, second, r.winner.config, steps, o.constraints, mem);
    const auto plain =
        tuner::evaluate_candidate(w.costs, second, r.plain.config, steps, o.constraints, mem);
    const double out_of_sample = plain.mean_step_seconds / won.mean_step_seconds;
    EXPECT_NEAR(out_of_sample / in_sample, 1.0, 0.02)
        << "in sample " << in_sample << "x on " << r.sample_steps << " steps, out of sample "
        << out_of_sample << "x on " << steps << " steps";
    EXPECT_TRUE(won.feasible) << won.infeasible;
}

// ---- the tuned config ----

TEST(TunedConfig, RoundTripsTheReproduciblePart) {
    const auto& w = shared_workload();
    const auto o = quick_options(2);
    const auto& r = shared_result();
    tuner::tuned_config c;
    c.layout_spec = w.costs.layout().spec();
    c.context_tokens = w.context;
    c.model = w.costs.model();
    c.hardware = w.costs.hardware();
    c.data.spec = "synthetic:x";
    c.data.shuffle_seed = 9;
    c.data.context_policy = "split";
    const auto j = tuner::tuned_config_json(c, r, o);
    EXPECT_EQ(j.at("schema"), "wlbtune.config/1");
    EXPECT_EQ(j.at("predicted").at("label"), "simulated");
    EXPECT_DOUBLE_EQ(j.at("predicted").at("speedup").at("over_plain").get<double>(),
                     r.plain.mean_step_seconds / r.winner.mean_step_seconds);
    const auto back = tuner::tuned_config_from_json(j, "t.json");
    EXPECT_EQ(back.layout_spec, c.layout_spec);
    EXPECT_EQ(back.context_tokens, w.context);
    EXPECT_EQ(back.model.name, "7b");
    EXPECT_EQ(back.data.spec, "synthetic:x");
    EXPECT_EQ(back.data.shuffle_seed, std::optional<std::uint64_t>(9));
    EXPECT_EQ(back.data.context_policy, "split");
    EXPECT_EQ(tuner::to_json(back.packing), tuner::to_json(r.winner.config.packing));
    EXPECT_EQ(tuner::to_json(back.sharding), tuner::to_json(r.winner.config.sharding));
    EXPECT_EQ(back.evaluated_steps, r.sample_steps);

    auto bad = j;
    bad["schema"] = "wlbtune.plan/1";
    EXPECT_THROW(tuner::tuned_config_from_json(bad, "t.json"), input_error);
    bad = j;
    bad["packing"]["smax_tokens"] = 5; // below the context
    try {
        tuner::tuned_config_from_json(bad, "t.json");
        FAIL() << "expected an input error";
    } catch (const input_error& e) {
        EXPECT_NE(std::string(e.what()).find("t.json"), std::string::npos) << e.what();
    }
}

} // namespace
