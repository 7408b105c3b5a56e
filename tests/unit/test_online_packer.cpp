// The online packer (tuner/packing/online_packer.hpp) and packer state (packer_state.hpp): fed the
// documents of a stream in feeds of any size, it emits exactly the steps pack_stream emits over
// that stream, for every policy over many seeds; a packer restored from a saved state (also
// through its JSON) continues with exactly the steps of an uninterrupted run; a step the fed
// documents do not decide yet leaves everything as it was; bad input is refused with a message.
#include "base/error.hpp"
#include "tuner/cost/cost_model.hpp"
#include "tuner/data/document_stream.hpp"
#include "tuner/packing/online_packer.hpp"
#include "tuner/packing/pack_run.hpp"
#include "tuner/packing/packer.hpp"
#include "tuner/packing/packer_state.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <random>

using namespace wlb;
using tuner::packing_config;
using tuner::packing_policy;

namespace {

constexpr std::int64_t context = 2048;

std::vector<std::int64_t> random_lengths(std::mt19937_64& rng, std::size_t n) {
    std::lognormal_distribution<double> body(5.0, 1.0);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    std::vector<std::int64_t> out;
    for (std::size_t i = 0; i < n; ++i) {
        double x = u(rng) < 0.05 ? u(rng) * context : body(rng);
        out.push_back(std::clamp<std::int64_t>(static_cast<std::int64_t>(x), 1, context));
    }
    return out;
}

packing_config random_config(std::mt19937_64& rng, packing_policy policy) {
    packing_config c;
    c.policy = policy;
    c.context_tokens = context;
    c.replicas = static_cast<int>(1 + rng() % 2);
    c.micro_batches = static_cast<int>(1 + rng() % 4);
    c.smax_tokens = rng() % 2 ? 0 : context + static_cast<std::int64_t>(rng() % context);
    c.window = policy == packing_policy::fixed_greedy ? static_cast<int>(1 + rng() % 4) : 1;
    if (policy == packing_policy::wlb) {
        const auto queues = 1 + rng() % 3;
        std::int64_t t = 200;
        for (std::uint64_t i = 0; i < queues && t < context; ++i) {
            t += static_cast<std::int64_t>(1 + rng() % 600);
            c.thresholds.push_back(std::min(t, context));
        }
    }
    return c;
}

tuner::cost_model make_costs() {
    return tuner::cost_model(runtime::model_preset("7b"), tuner::hardware_preset("h100-sxm"),
                             runtime::layout(8, 2, 4, 1));
}

// One line per step: enough to compare two runs exactly.
std::string text(const runtime::global_batch& b) {
    std::string s = fmt::format("step {}:", b.step);
    for (const auto& r : b.replicas) {
        s += " |";
        for (const auto& mb : r.micro_batches) {
            s += " [";
            for (const auto& d : mb.docs)
                s += fmt::format("{}:{}@{} ", d.id, d.tokens, d.drawn_step);
            s += "]";
        }
    }
    return s;
}

// The offline reference: pack_stream over a document stream of `lengths`, to its end.
std::vector<std::string> offline(const packing_config& c, const tuner::cost_model& costs,
                                 const std::vector<std::int64_t>& lengths) {
    tuner::stream_options so;
    so.context_tokens = c.context_tokens;
    tuner::document_stream stream(std::make_unique<tuner::vector_source>(lengths), so);
    std::vector<std::string> steps;
    tuner::pack_stream(stream, c, costs, 0,
                       [&](const runtime::global_batch& b) { steps.push_back(text(b)); });
    return steps;
}

std::vector<std::int64_t> iota_ids(std::size_t from, std::size_t to) {
    std::vector<std::int64_t> ids(to - from);
    for (std::size_t i = 0; i < ids.size(); ++i)
        ids[i] = static_cast<std::int64_t>(from + i);
    return ids;
}

// Feeds documents [from, to) of `lengths` (ids are positions).
void feed(tuner::online_packer& p, const std::vector<std::int64_t>& lengths, std::size_t from,
          std::size_t to) {
    const auto ids = iota_ids(from, to);
    p.feed(ids, std::span(lengths).subspan(from, to - from));
}

void drain_ready(tuner::online_packer& p, std::vector<std::string>& out) {
    while (auto b = p.next())
        out.push_back(text(*b));
}

class OnlinePacker : public ::testing::TestWithParam<packing_policy> {};

std::string policy_name(const ::testing::TestParamInfo<packing_policy>& p) {
    std::string s(tuner::to_string(p.param));
    std::replace(s.begin(), s.end(), '-', '_');
    return s;
}

TEST_P(OnlinePacker, FedInAnyChunksGivesTheOfflineSteps) {
    const auto costs = make_costs();
    for (std::uint64_t seed = 1; seed <= 12; ++seed) {
        std::mt19937_64 rng(seed * 7919 + static_cast<std::uint64_t>(GetParam()));
        const auto c = random_config(rng, GetParam());
        const auto lengths = random_lengths(rng, 300 + rng() % 700);
        const auto expected = offline(c, costs, lengths);

        tuner::online_packer p(c, costs);
        std::vector<std::string> got;
        std::size_t fed = 0;
        while (fed < lengths.size()) {
            const auto n = std::min<std::size_t>(lengths.size() - fed, rng() % 40);
            feed(p, lengths, fed, fed + n);
            fed += n;
            drain_ready(p, got);
        }
        EXPECT_FALSE(p.finished());
        p.close();
        drain_ready(p, got);
        EXPECT_TRUE(p.finished());
        EXPECT_TRUE(p.waiting().empty());
        EXPECT_EQ(p.fed_documents(), 0);
        ASSERT_EQ(got, expected) << "seed " << seed;
        EXPECT_EQ(p.next_step(), static_cast<std::int64_t>(expected.size()));
    }
}

TEST_P(OnlinePacker, ResumedFromASavedStateContinuesWithTheSameSteps) {
    const auto costs = make_costs();
    for (std::uint64_t seed = 1; seed <= 8; ++seed) {
        std::mt19937_64 rng(seed * 104729 + static_cast<std::uint64_t>(GetParam()));
        const auto c = random_config(rng, GetParam());
        const auto lengths = random_lengths(rng, 600);
        const auto expected = offline(c, costs, lengths);

        tuner::online_packer first(c, costs);
        std::vector<std::string> got;
        const std::size_t cut = 100 + rng() % 400;
        feed(first, lengths, 0, cut);
        drain_ready(first, got);
        // Through JSON text, as a checkpoint file holds it.
        const auto saved = to_json(first.save_state()).dump();

        tuner::online_packer second(c, costs);
        second.load_state(tuner::online_packer_state_from_json(nlohmann::json::parse(saved), "ck"));
        EXPECT_EQ(to_json(second.save_state()).dump(), saved);
        feed(second, lengths, cut, lengths.size());
        second.close();
        drain_ready(second, got);
        ASSERT_EQ(got, expected) << "seed " << seed << ", cut after " << cut << " documents";
    }
}

TEST_P(OnlinePacker, PackerStateRoundTripContinuesTheSameSteps) {
    // The packer alone: restored mid-run (through JSON) from another packer's state, both emit
    // the same steps from the same documents.
    const auto costs = make_costs();
    for (std::uint64_t seed = 1; seed <= 8; ++seed) {
        std::mt19937_64 rng(seed * 31 + static_cast<std::uint64_t>(GetParam()));
        const auto c = random_config(rng, GetParam());
        const auto lengths = random_lengths(rng, 800);
        auto a = tuner::make_packer(c, costs);
        auto b = tuner::make_packer(c, costs);
        std::size_t next_a = 0;
        auto pull_from = [&](std::size_t& next) {
            return [&](std::int64_t step) -> std::optional<runtime::document> {
                if (next >= lengths.size())
                    return std::nullopt;
                const auto id = static_cast<std::int64_t>(next);
                return runtime::document{id, lengths[next++], step};
            };
        };
        const tuner::document_pull pull_a = pull_from(next_a);
        const std::int64_t cut = static_cast<std::int64_t>(1 + rng() % 6);
        std::int64_t step = 0;
        for (; step < cut; ++step)
            ASSERT_TRUE(a->pack(step, pull_a));
        const auto j = to_json(a->save_state());
        b->load_state(tuner::packer_state_from_json(nlohmann::json::parse(j.dump()), "state"));
        EXPECT_EQ(to_json(b->save_state()), j);
        std::size_t next_b = next_a;
        const tuner::document_pull pull_b = pull_from(next_b);
        for (;; ++step) {
            auto sa = a->pack(step, pull_a);
            auto sb = b->pack(step, pull_b);
            ASSERT_EQ(sa.has_value(), sb.has_value()) << "seed " << seed << " step " << step;
            if (!sa)
                break;
            ASSERT_EQ(text(*sa), text(*sb)) << "seed " << seed;
        }
    }
}

TEST_P(OnlinePacker, APackDrawsAtLeastTheTokensItsHintPromises) {
    // packer::min_draw_tokens is a lower bound: the online packer skips attempts below it, so a
    // bound that overshoots would stall a step the documents fed already decide.
    const auto costs = make_costs();
    for (std::uint64_t seed = 1; seed <= 12; ++seed) {
        std::mt19937_64 rng(seed * 17 + static_cast<std::uint64_t>(GetParam()));
        const auto c = random_config(rng, GetParam());
        const auto lengths = random_lengths(rng, 1500);
        auto p = tuner::make_packer(c, costs);
        std::size_t next = 0;
        std::int64_t drawn = 0;
        bool ended = false;
        const tuner::document_pull pull =
            [&](std::int64_t step) -> std::optional<runtime::document> {
            if (next >= lengths.size()) {
                ended = true;
                return std::nullopt;
            }
            drawn += lengths[next];
            const auto id = static_cast<std::int64_t>(next);
            return runtime::document{id, lengths[next++], step};
        };
        std::int64_t positive = 0;
        for (std::int64_t step = 0;; ++step) {
            const auto hint = p->min_draw_tokens();
            positive += hint > 0;
            drawn = 0;
            if (!p->pack(step, pull))
                break;
            if (!ended) {
                ASSERT_GE(drawn, hint) << "seed " << seed << " step " << step;
            }
        }
        EXPECT_GT(positive, 0) << "seed " << seed << ": the hint never said anything";
        EXPECT_EQ(p->min_draw_tokens(), 0) << "after the stream's end nothing is drawn";
    }
}

TEST_P(OnlinePacker, APullThatThrowsLeavesAStepToContinue) {
    // packer.hpp, "Resumable intake": pack() interrupted by its pull at random documents and
    // called again emits the uninterrupted run's steps; save_state() refuses the half-drawn step.
    const auto costs = make_costs();
    for (std::uint64_t seed = 1; seed <= 8; ++seed) {
        std::mt19937_64 rng(seed * 977 + static_cast<std::uint64_t>(GetParam()));
        const auto c = random_config(rng, GetParam());
        const auto lengths = random_lengths(rng, 700);
        const auto expected = offline(c, costs, lengths);
        auto p = tuner::make_packer(c, costs);
        std::size_t next = 0;
        bool threw_mid_step = false;
        const tuner::document_pull pull =
            [&](std::int64_t step) -> std::optional<runtime::document> {
            if (rng() % 7 == 0)
                throw std::runtime_error("interrupted");
            if (next >= lengths.size())
                return std::nullopt;
            const auto id = static_cast<std::int64_t>(next);
            return runtime::document{id, lengths[next++], step};
        };
        std::vector<std::string> got;
        for (std::int64_t step = 0;;) {
            std::optional<runtime::global_batch> b;
            try {
                b = p->pack(step, pull);
            } catch (const std::runtime_error&) {
                if (!threw_mid_step) {
                    EXPECT_THROW((void)p->save_state(), internal_error);
                    threw_mid_step = true;
                }
                continue; // the same step again
            }
            if (!b)
                break;
            got.push_back(text(*b));
            ++step;
        }
        EXPECT_TRUE(threw_mid_step);
        ASSERT_EQ(got, expected) << "seed " << seed;
    }
}

INSTANTIATE_TEST_SUITE_P(EveryPolicy, OnlinePacker,
                         ::testing::Values(packing_policy::plain, packing_policy::fixed_greedy,
                                           packing_policy::varlen, packing_policy::wlb,
                                           packing_policy::ffd),
                         policy_name);

TEST(OnlinePackerSteps, AStepTheFedDocumentsDoNotDecideChangesNothing) {
    const auto costs = make_costs();
    packing_config c;
    c.policy = packing_policy::wlb;
    c.context_tokens = context;
    c.micro_batches = 2;
    c.thresholds = {1024};
    tuner::online_packer p(c, costs);
    // 2 x 2048 tokens per step: 3000 short tokens and one outlier do not fill it.
    const std::vector<std::int64_t> ids = {0, 1, 2, 3};
    const std::vector<std::int64_t> lengths = {1000, 1000, 1000, 1500};
    p.feed(ids, lengths);
    const auto before = to_json(p.save_state());
    EXPECT_FALSE(p.next());
    EXPECT_FALSE(p.finished());
    // The packer drew the four documents for step 0 and waits for more; a checkpoint still
    // reports them as fed, so that a restored packer draws them again for the same step.
    EXPECT_EQ(to_json(p.save_state()), before);
    EXPECT_EQ(p.fed_documents(), 0);
    EXPECT_EQ(p.waiting().size(), 4u);
    EXPECT_EQ(p.next_step(), 0);
    // Once closed, the same documents make steps (the outlier's queue drains) until all are out.
    p.close();
    std::int64_t tokens = 0;
    std::int64_t steps = 0;
    while (const auto b = p.next()) {
        EXPECT_EQ(b->step, steps++);
        for (const auto& mb : b->replicas[0].micro_batches)
            tokens += mb.tokens();
    }
    EXPECT_GE(steps, 1);
    EXPECT_EQ(tokens, 4500);
    EXPECT_TRUE(p.finished());
    EXPECT_FALSE(p.next());
}

TEST(OnlinePackerErrors, BadDocumentsAreRefusedAndNothingIsFed) {
    const auto costs = make_costs();
    packing_config c;
    c.policy = packing_policy::varlen;
    c.context_tokens = context;
    tuner::online_packer p(c, costs);
    const std::vector<std::int64_t> ids = {0, 1, 2};
    const std::vector<std::int64_t> too_long = {10, 20, context + 1};
    try {
        p.feed(ids, too_long);
        FAIL() << "a document over the context was fed";
    } catch (const input_error& e) {
        EXPECT_EQ(std::string(e.what()),
                  fmt::format("document 2 has {} tokens, over the context {}: the document stream "
                              "must truncate or split it first",
                              context + 1, context));
    }
    EXPECT_EQ(p.fed_documents(), 0);
    const std::vector<std::int64_t> two = {10, 20};
    EXPECT_THROW(p.feed(ids, two), input_error);
    const std::vector<std::int64_t> empty_doc = {10, 0, 20};
    EXPECT_THROW(p.feed(ids, empty_doc), input_error);
    const std::vector<std::int64_t> negative_id = {0, -1, 2};
    const std::vector<std::int64_t> fine = {10, 20, 30};
    EXPECT_THROW(p.feed(negative_id, fine), input_error);
    EXPECT_EQ(p.fed_documents(), 0);
    p.feed(ids, fine);
    EXPECT_EQ(p.fed_documents(), 3);
    p.close();
    EXPECT_THROW(p.feed(ids, fine), input_error);
}

TEST(OnlinePackerErrors, AStateOfAnotherConfigurationOrShapeIsRefused) {
    const auto costs = make_costs();
    packing_config c;
    c.policy = packing_policy::wlb;
    c.context_tokens = context;
    c.thresholds = {512, 1024};
    tuner::online_packer p(c, costs);
    auto other = c;
    other.thresholds = {600, 1024};
    tuner::online_packer q(other, costs);
    EXPECT_THROW(p.load_state(q.save_state()), input_error);

    auto s = p.save_state();
    s.packer.queues.pop_back(); // 1 queue for 2 thresholds
    EXPECT_THROW(p.load_state(s), input_error);
    s = p.save_state();
    s.packer.queues[0].push_back({7, 2000, 0}); // 2000 tokens belong in queue 1
    try {
        p.load_state(s);
        FAIL() << "a document outside its queue was restored";
    } catch (const input_error& e) {
        EXPECT_NE(std::string(e.what()).find("outside its queue [512, 1024)"), std::string::npos)
            << e.what();
    }
    s = p.save_state();
    s.packer.pending = runtime::document{1, 10, 0}; // only plain cuts documents
    EXPECT_THROW(p.load_state(s), input_error);
    // A refused state leaves the packer as it was.
    EXPECT_EQ(to_json(p.save_state()), to_json(tuner::online_packer(c, costs).save_state()));

    EXPECT_THROW(
        tuner::online_packer_state_from_json(nlohmann::json::parse(R"({"schema": "x"})"), "ck"),
        input_error);
    EXPECT_THROW(
        tuner::packer_state_from_json(nlohmann::json::parse(R"({"carried": [[1, 2]]})"), "ck"),
        input_error);
}

} // namespace
