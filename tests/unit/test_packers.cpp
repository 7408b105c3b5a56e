// Property tests of the packing policies (tuner/packing/packer.hpp) over many random seeds: every
// drawn token is accounted for exactly once, no micro-batch or step exceeds its limit, delays add
// up to what the measures report, the same input gives the same plan, and a run to the end of the
// stream leaves nothing waiting.
#include "base/error.hpp"
#include "tuner/cost/cost_model.hpp"
#include "tuner/packing/pack_run.hpp"
#include "tuner/packing/packer.hpp"
#include "tuner/packing/packing_measures.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <map>
#include <random>

using namespace wlb;
using tuner::packing_config;
using tuner::packing_policy;

namespace {

constexpr std::int64_t context = 2048;

// Heavy-tailed lengths in [1, context]: mostly short, a few near the context (like long-context
// pretraining data, scaled down).
std::vector<std::int64_t> random_lengths(std::mt19937_64& rng, std::size_t n) {
    std::lognormal_distribution<double> body(5.0, 1.0);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    std::vector<std::int64_t> out;
    for (std::size_t i = 0; i < n; ++i) {
        double x = u(rng) < 0.03 ? u(rng) * context : body(rng);
        out.push_back(std::clamp<std::int64_t>(static_cast<std::int64_t>(x), 1, context));
    }
    return out;
}

tuner::cost_model make_costs(int micro_batches) {
    return tuner::cost_model(runtime::model_preset("7b"), tuner::hardware_preset("h100-sxm"),
                             runtime::layout(8, 2, micro_batches, 1));
}

packing_config random_config(std::mt19937_64& rng, packing_policy policy) {
    packing_config c;
    c.policy = policy;
    c.context_tokens = context;
    c.replicas = static_cast<int>(1 + rng() % 2);
    c.micro_batches = static_cast<int>(1 + rng() % 4);
    c.smax_tokens = rng() % 2 ? 0 : context + static_cast<std::int64_t>(rng() % context);
    c.window = static_cast<int>(1 + rng() % 4);
    const auto queues = rng() % 4;
    std::int64_t t = 256;
    for (std::uint64_t i = 0; i < queues; ++i) {
        t += static_cast<std::int64_t>(1 + rng() % 500);
        c.thresholds.push_back(std::min(t, context));
        if (t >= context)
            break;
    }
    return c;
}

struct run_result {
    std::vector<runtime::global_batch> steps;
    std::vector<runtime::document> waiting;
    std::int64_t pulled = 0; // documents drawn from the stream
    tuner::run_summary summary;
};

run_result run(const packing_config& c, const std::vector<std::int64_t>& lengths,
               std::int64_t max_steps) {
    const auto costs = make_costs(c.micro_batches);
    auto p = tuner::make_packer(c, costs);
    run_result r;
    std::size_t next = 0;
    tuner::document_pull pull = [&](std::int64_t step) -> std::optional<runtime::document> {
        if (next >= lengths.size())
            return std::nullopt;
        ++r.pulled;
        const auto id = static_cast<std::int64_t>(next);
        return runtime::document{id, lengths[next++], step};
    };
    tuner::run_measures m(costs, c);
    tuner::run_packing(*p, pull, max_steps, m,
                       [&](const runtime::global_batch& b) { r.steps.push_back(b); });
    r.waiting = p->waiting();
    r.summary = m.summary();
    return r;
}

std::string config_text(const packing_config& c) {
    return fmt::format("{} dp={} mb={} smax={} window={} queues={}", to_string(c.policy),
                       c.replicas, c.micro_batches, c.micro_batch_limit(), c.window,
                       c.thresholds.size());
}

void check_invariants(const packing_config& c, const std::vector<std::int64_t>& lengths,
                      const run_result& r, bool drained) {
    const bool plain = c.policy == packing_policy::plain;
    std::map<std::int64_t, std::int64_t> tokens_by_id;
    std::map<std::int64_t, int> placements_by_id;
    std::int64_t delay_sum = 0;
    for (std::size_t s = 0; s < r.steps.size(); ++s) {
        const auto& b = r.steps[s];
        ASSERT_EQ(b.step, static_cast<std::int64_t>(s));
        ASSERT_EQ(b.replicas.size(), static_cast<std::size_t>(c.replicas));
        std::int64_t step_tokens = 0;
        for (const auto& rep : b.replicas) {
            ASSERT_EQ(rep.micro_batches.size(), static_cast<std::size_t>(c.micro_batches));
            for (const auto& mb : rep.micro_batches) {
                EXPECT_LE(mb.tokens(), c.micro_batch_limit()) << "step " << s;
                step_tokens += mb.tokens();
                for (const auto& d : mb.docs) {
                    EXPECT_GT(d.tokens, 0);
                    EXPECT_LE(d.drawn_step, b.step);
                    EXPECT_GE(d.drawn_step, 0);
                    tokens_by_id[d.id] += d.tokens;
                    ++placements_by_id[d.id];
                    delay_sum += (b.step - d.drawn_step) * d.tokens;
                }
            }
        }
        EXPECT_LE(step_tokens, c.step_tokens()) << "step " << s;
        if (plain && s + 1 < r.steps.size()) { // every sequence full until the stream's end
            EXPECT_EQ(step_tokens, c.step_tokens()) << "step " << s;
        }
    }
    for (const auto& d : r.waiting) {
        tokens_by_id[d.id] += d.tokens;
        ++placements_by_id[d.id];
    }
    // Every drawn document exactly once (plain: its parts add up to its length), no other.
    ASSERT_EQ(tokens_by_id.size(), static_cast<std::size_t>(r.pulled));
    for (const auto& [id, tokens] : tokens_by_id) {
        ASSERT_LT(id, r.pulled);
        EXPECT_EQ(tokens, lengths[static_cast<std::size_t>(id)]) << "document " << id;
        EXPECT_EQ(placements_by_id[id] == 1 || (plain && placements_by_id[id] == 2), true)
            << "document " << id << " placed " << placements_by_id[id] << " times";
    }
    // The measures report the same delays and totals.
    EXPECT_EQ(r.summary.delay_token_iterations, delay_sum);
    EXPECT_EQ(r.summary.steps, static_cast<std::int64_t>(r.steps.size()));
    if (plain) {
        EXPECT_EQ(delay_sum, 0);
    }
    if (drained) {
        EXPECT_TRUE(r.waiting.empty());
        EXPECT_EQ(r.pulled, static_cast<std::int64_t>(lengths.size()));
    }
}

class PackerProperties : public ::testing::TestWithParam<packing_policy> {};

TEST_P(PackerProperties, EveryDocumentOnceWithinLimitsAndDelaysAddUp) {
    for (std::uint64_t seed = 1; seed <= 40; ++seed) {
        std::mt19937_64 rng(seed * 7919 + static_cast<std::uint64_t>(GetParam()));
        const auto c = random_config(rng, GetParam());
        const auto lengths = random_lengths(rng, 50 + rng() % 400);
        const auto max_steps = static_cast<std::int64_t>(rng() % 3 == 0 ? 0 : 1 + rng() % 12);
        SCOPED_TRACE(fmt::format("seed {} {} docs={} steps={}", seed, config_text(c),
                                 lengths.size(), max_steps));
        const auto r = run(c, lengths, max_steps);
        check_invariants(c, lengths, r, max_steps == 0);
        if (max_steps > 0 && r.pulled < static_cast<std::int64_t>(lengths.size())) {
            EXPECT_EQ(r.steps.size(), static_cast<std::size_t>(max_steps));
        }
    }
}

TEST_P(PackerProperties, SameInputGivesTheSamePlan) {
    for (std::uint64_t seed = 1; seed <= 5; ++seed) {
        std::mt19937_64 rng(seed);
        const auto c = random_config(rng, GetParam());
        const auto lengths = random_lengths(rng, 300);
        const auto a = run(c, lengths, 0);
        const auto b = run(c, lengths, 0);
        ASSERT_EQ(a.steps.size(), b.steps.size());
        for (std::size_t s = 0; s < a.steps.size(); ++s)
            for (std::size_t r = 0; r < a.steps[s].replicas.size(); ++r)
                for (std::size_t m = 0; m < a.steps[s].replicas[r].micro_batches.size(); ++m) {
                    const auto& x = a.steps[s].replicas[r].micro_batches[m].docs;
                    const auto& y = b.steps[s].replicas[r].micro_batches[m].docs;
                    ASSERT_EQ(x.size(), y.size());
                    for (std::size_t k = 0; k < x.size(); ++k) {
                        EXPECT_EQ(x[k].id, y[k].id);
                        EXPECT_EQ(x[k].tokens, y[k].tokens);
                        EXPECT_EQ(x[k].drawn_step, y[k].drawn_step);
                    }
                }
    }
}

TEST_P(PackerProperties, DocumentLongerThanTheContextIsRejected) {
    packing_config c;
    c.policy = GetParam();
    c.context_tokens = context;
    c.micro_batches = 2;
    EXPECT_THROW((void)run(c, {10, context + 1, 10}, 0), input_error);
}

INSTANTIATE_TEST_SUITE_P(AllPolicies, PackerProperties,
                         ::testing::Values(packing_policy::plain, packing_policy::fixed_greedy,
                                           packing_policy::varlen, packing_policy::wlb,
                                           packing_policy::ffd, packing_policy::plain_whole),
                         [](const auto& param_info) {
                             std::string n(to_string(param_info.param));
                             std::replace(n.begin(), n.end(), '-', '_');
                             return n;
                         });

TEST(Packers, PlainCutsAtSequenceBoundariesInStreamOrder) {
    packing_config c;
    c.policy = packing_policy::plain;
    c.context_tokens = 100;
    c.micro_batches = 2;
    const auto r = run(c, {60, 60, 60, 30}, 0);
    ASSERT_EQ(r.steps.size(), 2u);
    const auto& s0 = r.steps[0].replicas[0].micro_batches;
    // [60, 40 of doc 1] [20 of doc 1, 60, 20 of doc 3]; then [10 of doc 3]... doc 3 is 30 long.
    ASSERT_EQ(s0[0].docs.size(), 2u);
    EXPECT_EQ(s0[0].docs[1].id, 1);
    EXPECT_EQ(s0[0].docs[1].tokens, 40);
    EXPECT_EQ(s0[1].docs[0].id, 1);
    EXPECT_EQ(s0[1].docs[0].tokens, 20);
    EXPECT_EQ(s0[1].docs[2].id, 3);
    EXPECT_EQ(s0[1].docs[2].tokens, 20);
    const auto& s1 = r.steps[1].replicas[0].micro_batches;
    ASSERT_EQ(s1[0].docs.size(), 1u);
    EXPECT_EQ(s1[0].docs[0].tokens, 10);
    EXPECT_EQ(s1[0].docs[0].drawn_step, 1); // the continued part counts as drawn there
}

TEST(Packers, WlbReleasesAQueueOnlyWithOneOutlierPerMicroBatch) {
    // Outliers (>= 500 tokens) arrive one every few documents; each step with outliers must hold
    // exactly one per micro-batch while the stream lasts (N = 4 micro-batches).
    packing_config c;
    c.policy = packing_policy::wlb;
    c.context_tokens = context;
    c.micro_batches = 4;
    c.smax_tokens = 2 * context;
    c.thresholds = {500};
    std::vector<std::int64_t> lengths;
    for (int i = 0; i < 3000; ++i)
        lengths.push_back(i % 7 == 3 ? 600 + i % 400 : 50 + i % 90);
    const auto r = run(c, lengths, 20);
    ASSERT_LT(r.pulled, static_cast<std::int64_t>(lengths.size())); // the stream lasts
    check_invariants(c, lengths, r, false);
    int steps_with_outliers = 0;
    for (const auto& b : r.steps) {
        std::vector<int> per_mb;
        for (const auto& mb : b.replicas[0].micro_batches) {
            int k = 0;
            for (const auto& d : mb.docs)
                k += d.tokens >= 500;
            per_mb.push_back(k);
        }
        const int total = per_mb[0] + per_mb[1] + per_mb[2] + per_mb[3];
        if (total == 0)
            continue;
        ++steps_with_outliers;
        EXPECT_EQ(total % 4, 0) << "step " << b.step;
        for (int k : per_mb)
            EXPECT_EQ(k, total / 4) << "step " << b.step;
    }
    EXPECT_GT(steps_with_outliers, 0);
}

TEST(Packers, BalancingPoliciesBeatPlainOnHeavyTailedData) {
    // A property the balancing policies exist for: on heavy-tailed lengths, wlb with a queue and
    // fixed-greedy over a window are better balanced (predicted) than plain packing.
    std::mt19937_64 rng(42);
    const auto lengths = random_lengths(rng, 6000);
    packing_config c;
    c.context_tokens = context;
    c.micro_batches = 4;
    c.policy = packing_policy::plain;
    const double plain = run(c, lengths, 100).summary.imbalance.mean;
    c.policy = packing_policy::fixed_greedy;
    c.window = 4;
    const double greedy = run(c, lengths, 100).summary.imbalance.mean;
    c.policy = packing_policy::wlb;
    c.smax_tokens = context * 3 / 2;
    c.thresholds = {context / 4};
    const double wlb = run(c, lengths, 100).summary.imbalance.mean;
    EXPECT_LT(greedy, plain);
    EXPECT_LT(wlb, plain);
}

TEST(Packers, ConfigValidationNamesTheField) {
    packing_config c;
    c.context_tokens = 1000;
    c.smax_tokens = 500;
    EXPECT_THROW(tuner::validate(c), input_error);
    c.smax_tokens = 0;
    c.thresholds = {300, 200};
    try {
        tuner::validate(c);
        FAIL();
    } catch (const input_error& e) {
        EXPECT_NE(std::string(e.what()).find("thresholds must increase"), std::string::npos);
    }
    c.thresholds = {2000};
    EXPECT_THROW(tuner::validate(c), input_error);
    EXPECT_THROW((void)tuner::parse_packing_policy("zigzag"), input_error);
    for (const auto& n : tuner::packing_policy_names())
        EXPECT_EQ(to_string(tuner::parse_packing_policy(n)), n);
}

} // namespace
