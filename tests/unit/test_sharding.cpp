// CP sharding policies: the output contract (every token held once), the token and pair balance
// each policy promises, exact pair counts against a brute-force count over the document mask,
// and the "never worse" guarantees of adaptive and hybrid.
#include "base/error.hpp"
#include "tuner/cost/cost_model.hpp"
#include "tuner/sharding/make_sharder.hpp"
#include "tuner/sharding/shard_hybrid.hpp"
#include "tuner/sharding/shard_metrics.hpp"
#include "tuner/sharding/shard_per_doc.hpp"
#include "tuner/sharding/shard_per_seq.hpp"
#include "tuner/sharding/shard_run.hpp"
#include "tuner/sharding/sharding.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

using namespace wlb;
using runtime::chunk;
using runtime::micro_batch;
using runtime::sharded_micro_batch;
using tuner::cost_model;
using tuner::sharding_policy;

namespace {

cost_model make_cost(int cp, const char* model = "7b") {
    return cost_model(runtime::model_preset(model), tuner::hardware_preset("h100-sxm"),
                      runtime::layout::parse(fmt::format("tp=8,cp={},pp=4,dp=1", cp)));
}

micro_batch make_mb(const std::vector<std::int64_t>& lengths) {
    micro_batch mb;
    for (std::size_t i = 0; i < lengths.size(); ++i)
        mb.docs.push_back({static_cast<std::int64_t>(100 + i), lengths[i], 0});
    return mb;
}

/// A random micro-batch: a mix of documents shorter than 2*cp (all remainder), short, medium
/// and long ones, so every branch of every policy is exercised.
micro_batch random_mb(std::mt19937_64& rng, int cp) {
    std::uniform_int_distribution<int> count(1, 40);
    std::uniform_int_distribution<int> kind(0, 9);
    std::vector<std::int64_t> lengths;
    const int n = count(rng);
    for (int i = 0; i < n; ++i) {
        const int k = kind(rng);
        std::int64_t hi = k < 2 ? 2 * cp : k < 6 ? 600 : k < 9 ? 6000 : 40000;
        lengths.push_back(std::uniform_int_distribution<std::int64_t>(1, hi)(rng));
    }
    return make_mb(lengths);
}

/// Independent of find_sharding_error: counts, token by token, how many ranks hold each token.
void expect_every_token_held_once(const micro_batch& mb, const sharded_micro_batch& s) {
    std::map<std::int64_t, std::vector<int>> held;
    for (const auto& d : mb.docs)
        held[d.id].assign(static_cast<std::size_t>(d.tokens), 0);
    for (const auto& shard : s.ranks) {
        for (const auto& c : shard.chunks) {
            ASSERT_TRUE(held.count(c.doc_id)) << "unknown document " << c.doc_id;
            ASSERT_GT(c.q_tokens, 0);
            auto& h = held[c.doc_id];
            ASSERT_LE(c.q_offset + c.q_tokens, static_cast<std::int64_t>(h.size()));
            for (std::int64_t t = c.q_offset; t < c.q_offset + c.q_tokens; ++t)
                ++h[static_cast<std::size_t>(t)];
        }
    }
    for (const auto& [id, h] : held)
        for (std::size_t t = 0; t < h.size(); ++t)
            ASSERT_EQ(h[t], 1) << "document " << id << " token " << t;
    EXPECT_EQ(tuner::find_sharding_error(mb, s), std::nullopt);
}

/// Every rank holds floor(T/cp) or ceil(T/cp) tokens, and exactly T/cp when cp divides T.
void expect_tokens_even(const micro_batch& mb, const tuner::shard_metrics& m, int cp) {
    const std::int64_t total = mb.tokens();
    for (const auto& r : m.ranks) {
        EXPECT_GE(r.tokens, total / cp);
        EXPECT_LE(r.tokens, (total + cp - 1) / cp);
    }
}

/// Bound on the spread (max - min over ranks) of per-doc causal pairs.
///
/// Derivation. A document of d = 2cp*q + r tokens. Without remainder tokens chunk k holds q
/// queries after k*q earlier tokens, and rank i's chunks i and 2cp-1-i hold
///   q*(i*q) + q(q+1)/2 + q*((2cp-1-i)*q) + q(q+1)/2 = q^2*(2cp-1) + q(q+1)
/// pairs: the same for every rank. With remainders, chunk k gets e_k in {0,1} extra tokens and
/// starts E_k = e_0 + ... + e_{k-1} <= r tokens later. Its pairs grow from the base by
///   (q+e)(kq+E) + (q+e)(q+e+1)/2 - kq^2 - q(q+1)/2 = q*E_k + e_k*end_k,
/// where end_k = (k+1)q + E_k + e_k <= d is the chunk's end (using (e^2+e)/2 = e). Each term is
/// >= 0, so a rank's growth D_i = delta_i + delta_{2cp-1-i} lies in [0, 2*q*r + 2*d], and the
/// spread over ranks of the document's pairs is at most 2*(q*r + d). Summed over the documents
/// with r > 0: spread <= sum_d 2*(q_d*r_d + d); and it is 0 when every r_d = 0. (Merging a
/// rank's adjacent chunks does not change pairs.)
std::int64_t per_doc_pair_spread_bound(const micro_batch& mb, int cp) {
    std::int64_t bound = 0;
    for (const auto& d : mb.docs) {
        const std::int64_t q = d.tokens / (2 * cp);
        const std::int64_t r = d.tokens % (2 * cp);
        if (r > 0)
            bound += 2 * (q * r + d.tokens);
    }
    return bound;
}

TEST(Sharding, RandomMicroBatchesKeepEveryPolicysContract) {
    std::mt19937_64 rng(20250401);
    for (int trial = 0; trial < 160; ++trial) {
        const int cp = 1 + trial % 16;
        const auto mb = random_mb(rng, cp);
        // Two models: 7b's attention is a small share of a layer, 30b's hidden size makes the
        // linear work of a token dearer, so adaptive and hybrid face different trade-offs.
        const char* model = (trial / 16) % 2 ? "30b" : "7b";
        const auto cost = make_cost(cp, model);
        SCOPED_TRACE(fmt::format("trial {} cp {} model {} docs {} tokens {}", trial, cp, model,
                                 mb.docs.size(), mb.tokens()));

        const auto per_seq = tuner::shard_per_seq(mb, cp);
        const auto per_doc = tuner::shard_per_doc(mb, cp);
        ASSERT_EQ(per_seq.ranks.size(), static_cast<std::size_t>(cp));
        ASSERT_EQ(per_doc.ranks.size(), static_cast<std::size_t>(cp));
        expect_every_token_held_once(mb, per_seq);
        expect_every_token_held_once(mb, per_doc);
        const auto seq_m = tuner::measure_sharding(per_seq, cost);
        const auto doc_m = tuner::measure_sharding(per_doc, cost);
        expect_tokens_even(mb, seq_m, cp);
        expect_tokens_even(mb, doc_m, cp);
        // Equal token counts, rank by rank, under both policies.
        for (int r = 0; r < cp; ++r)
            EXPECT_EQ(seq_m.ranks[static_cast<std::size_t>(r)].tokens,
                      doc_m.ranks[static_cast<std::size_t>(r)].tokens);

        // Per-doc pair balance.
        EXPECT_LE(doc_m.max_pairs - doc_m.min_pairs, per_doc_pair_spread_bound(mb, cp));

        // Pairs are a property of the micro-batch, not of the layout.
        std::int64_t total_pairs = 0;
        for (const auto& d : mb.docs)
            total_pairs += runtime::causal_pairs(d.tokens);
        for (const auto* m : {&seq_m, &doc_m}) {
            std::int64_t sum = 0;
            for (const auto& r : m->ranks)
                sum += r.causal_pairs;
            EXPECT_EQ(sum, total_pairs);
        }

        const double better = std::min(seq_m.predicted_seconds, doc_m.predicted_seconds);
        for (auto spec : {tuner::sharding_spec{sharding_policy::adaptive, {}},
                          tuner::sharding_spec{sharding_policy::hybrid, {}},
                          tuner::sharding_spec{sharding_policy::hybrid, 1024},
                          tuner::sharding_spec{sharding_policy::hybrid, 1}}) {
            SCOPED_TRACE(tuner::to_json(spec).dump());
            const auto decision = tuner::make_sharder(spec, cost)->shard(mb);
            expect_every_token_held_once(mb, decision.sharded);
            const auto m = tuner::measure_sharding(decision.sharded, cost);
            EXPECT_LE(m.predicted_seconds, better);
            if (decision.applied == sharding_policy::hybrid) {
                EXPECT_LE(m.token_imbalance, spec.hybrid_max_token_imbalance);
            }
        }
    }
}

TEST(Sharding, PerDocPairsAreExactlyEqualWithoutRemainders) {
    for (int cp : {1, 2, 3, 4, 8, 16}) {
        // Every length a multiple of 2*cp.
        const auto mb = make_mb({2 * cp * 7, 2 * cp * 1, 2 * cp * 500, 2 * cp * 33});
        const auto m = tuner::measure_sharding(tuner::shard_per_doc(mb, cp), make_cost(cp));
        EXPECT_EQ(m.min_pairs, m.max_pairs) << "cp " << cp;
        EXPECT_EQ(m.min_tokens, m.max_tokens) << "cp " << cp;
    }
}

/// Brute force: lay the micro-batch out as one packed sequence, build the T x T document mask
/// (query i attends key j iff same document and j <= i), and count for each rank the mask
/// entries in the rows of the tokens it holds.
TEST(Sharding, PairCountsAndKernelShapesMatchABruteForceMask) {
    std::mt19937_64 rng(7);
    for (int trial = 0; trial < 80; ++trial) {
        const int cp = 1 + trial % 8;
        std::vector<std::int64_t> lengths;
        const int n = std::uniform_int_distribution<int>(1, 8)(rng);
        for (int i = 0; i < n; ++i)
            lengths.push_back(std::uniform_int_distribution<std::int64_t>(1, 30)(rng));
        const auto mb = make_mb(lengths);
        const auto cost = make_cost(cp);

        std::vector<std::int64_t> doc_of;           // packed position -> document index
        std::map<std::int64_t, std::int64_t> start; // doc id -> packed start
        for (std::size_t i = 0; i < mb.docs.size(); ++i) {
            start[mb.docs[i].id] = static_cast<std::int64_t>(doc_of.size());
            doc_of.insert(doc_of.end(), static_cast<std::size_t>(mb.docs[i].tokens),
                          static_cast<std::int64_t>(i));
        }
        const auto total = static_cast<std::int64_t>(doc_of.size());
        auto mask = [&](std::int64_t i, std::int64_t j) {
            return doc_of[static_cast<std::size_t>(i)] == doc_of[static_cast<std::size_t>(j)] &&
                   j <= i;
        };

        for (auto policy : {sharding_policy::per_seq, sharding_policy::per_doc,
                            sharding_policy::adaptive, sharding_policy::hybrid}) {
            SCOPED_TRACE(fmt::format("trial {} cp {} {}", trial, cp, tuner::to_string(policy)));
            const auto s = tuner::make_sharder({policy, {}}, cost)->shard(mb).sharded;
            const auto m = tuner::measure_sharding(s, cost);
            for (std::size_t r = 0; r < s.ranks.size(); ++r) {
                std::int64_t pairs = 0;
                const auto& load = m.ranks[r];
                ASSERT_EQ(load.cu_seqlens_q.size(), s.ranks[r].chunks.size() + 1);
                ASSERT_EQ(load.cu_seqlens_k.size(), s.ranks[r].chunks.size() + 1);
                for (std::size_t k = 0; k < s.ranks[r].chunks.size(); ++k) {
                    const auto& c = s.ranks[r].chunks[k];
                    const std::int64_t first = start[c.doc_id] + c.q_offset;
                    std::int64_t keys_of_last_row = 0;
                    for (std::int64_t i = first; i < first + c.q_tokens; ++i) {
                        keys_of_last_row = 0;
                        for (std::int64_t j = 0; j < total; ++j)
                            keys_of_last_row += mask(i, j) ? 1 : 0;
                        pairs += keys_of_last_row;
                    }
                    // The kernel's key length is what the chunk's last query attends.
                    EXPECT_EQ(load.cu_seqlens_q[k + 1] - load.cu_seqlens_q[k], c.q_tokens);
                    EXPECT_EQ(load.cu_seqlens_k[k + 1] - load.cu_seqlens_k[k], keys_of_last_row);
                }
                EXPECT_EQ(load.causal_pairs, pairs) << "rank " << r;
            }
        }
    }
}

TEST(Sharding, PerSeqCutsUnevenTotalsByOneTokenWithoutPadding) {
    // One document of 10 tokens over cp = 2: ranks hold 5 and 5; rank 0's front chunk is
    // ceil(5/2) = 3 tokens, its back chunk 2; rank 1's chunks [3, 6) and [6, 8) are adjacent
    // and become one kernel sequence.
    auto s = tuner::shard_per_seq(make_mb({10}), 2);
    ASSERT_EQ(s.ranks[0].chunks.size(), 2u);
    EXPECT_EQ(s.ranks[0].chunks[0].q_offset, 0);
    EXPECT_EQ(s.ranks[0].chunks[0].q_tokens, 3);
    EXPECT_EQ(s.ranks[0].chunks[1].q_offset, 8);
    EXPECT_EQ(s.ranks[0].chunks[1].q_tokens, 2);
    ASSERT_EQ(s.ranks[1].chunks.size(), 1u);
    EXPECT_EQ(s.ranks[1].chunks[0].q_offset, 3);
    EXPECT_EQ(s.ranks[1].chunks[0].q_tokens, 5);

    // 11 tokens: rank 0 holds 6 (3 + 3), rank 1 holds 5 (3 + 2).
    s = tuner::shard_per_seq(make_mb({4, 7}), 2);
    const auto m = tuner::measure_sharding(s, make_cost(2));
    EXPECT_EQ(m.ranks[0].tokens, 6);
    EXPECT_EQ(m.ranks[1].tokens, 5);
    // Chunk boundaries at 3, 6, 8 of the packed sequence, doc 0 = [0, 4), doc 1 = [4, 11):
    // rank 0 holds chunk 0 = doc 0 [0, 3) and chunk 3 = doc 1 [4, 7).
    ASSERT_EQ(s.ranks[0].chunks.size(), 2u);
    EXPECT_EQ(s.ranks[0].chunks[0].doc_id, 100);
    EXPECT_EQ(s.ranks[0].chunks[0].q_tokens, 3);
    EXPECT_EQ(s.ranks[0].chunks[1].doc_id, 101);
    EXPECT_EQ(s.ranks[0].chunks[1].q_offset, 4);
    EXPECT_EQ(s.ranks[0].chunks[1].q_tokens, 3);
}

TEST(Sharding, PerDocDealsRemaindersWithOneCursorAcrossDocuments) {
    // cp = 2. Document A (5 tokens): q = 1, r = 1; the remainder goes to rank 0 (cursor 0 -> 1)
    // and lengthens chunk 0: chunks [0,2) [2,3) [3,4) [4,5). Document B (3 tokens): q = 0,
    // r = 3: ranks 1, 0, 1 (cursor 1 -> 0 -> 1 -> 0): chunk 1, chunk 0, then rank 1's back
    // chunk 2: [0,1) to rank 0, [1,2) + [2,3) to rank 1.
    const auto s = tuner::shard_per_doc(make_mb({5, 3}), 2);
    const std::vector<chunk> rank0 = {{100, 0, 2}, {100, 4, 1}, {101, 0, 1}};
    const std::vector<chunk> rank1 = {{100, 2, 2}, {101, 1, 2}};
    auto same = [](const std::vector<chunk>& got, const std::vector<chunk>& want) {
        if (got.size() != want.size())
            return false;
        for (std::size_t i = 0; i < got.size(); ++i)
            if (got[i].doc_id != want[i].doc_id || got[i].q_offset != want[i].q_offset ||
                got[i].q_tokens != want[i].q_tokens)
                return false;
        return true;
    };
    EXPECT_TRUE(same(s.ranks[0].chunks, rank0));
    EXPECT_TRUE(same(s.ranks[1].chunks, rank1));
}

TEST(Sharding, CpOneKeepsEveryDocumentWhole) {
    const auto mb = make_mb({7, 1, 300, 4096});
    const auto cost = make_cost(1);
    for (auto policy : {sharding_policy::per_seq, sharding_policy::per_doc,
                        sharding_policy::adaptive, sharding_policy::hybrid}) {
        const auto s = tuner::make_sharder({policy, {}}, cost)->shard(mb).sharded;
        ASSERT_EQ(s.ranks.size(), 1u);
        ASSERT_EQ(s.ranks[0].chunks.size(), mb.docs.size()) << tuner::to_string(policy);
        for (const auto& c : s.ranks[0].chunks)
            EXPECT_EQ(c.q_offset, 0);
    }
}

TEST(Sharding, AdaptivePicksPerSeqForTinyDocumentsAndPerDocForOneLongOne) {
    const auto cost = make_cost(4);
    auto adaptive = tuner::make_sharder({sharding_policy::adaptive, {}}, cost);
    // 128 documents of 100 tokens: per-doc cuts each into 8 pieces of 12-13 tokens, each padded
    // to a 128-token tile at the low short-query rate; per-seq keeps most of them whole.
    const auto tiny = make_mb(std::vector<std::int64_t>(128, 100));
    EXPECT_EQ(adaptive->shard(tiny).applied, sharding_policy::per_seq);
    // Short documents then one 64K document at the end: per-seq gives rank 0 the last piece
    // of the long document (the most keys) and rank 3 its first; per-doc evens it.
    std::vector<std::int64_t> lengths(60, 1000);
    lengths.push_back(65536);
    EXPECT_EQ(adaptive->shard(make_mb(lengths)).applied, sharding_policy::per_doc);
}

TEST(Sharding, HybridBeatsBothWhenLongAndTinyDocumentsMix) {
    // One 64K document and 400 documents of 100 tokens at cp = 4: per-seq is unbalanced by the
    // long document, per-doc pays 8 padded tiles for every tiny one; hybrid shards the long
    // one per document and spreads the tiny ones whole.
    std::vector<std::int64_t> lengths(400, 100);
    lengths.insert(lengths.begin() + 200, 65536);
    const auto mb = make_mb(lengths);
    const auto cost = make_cost(4);
    const double seq = tuner::measure_sharding(tuner::shard_per_seq(mb, 4), cost).predicted_seconds;
    const double doc = tuner::measure_sharding(tuner::shard_per_doc(mb, 4), cost).predicted_seconds;
    for (std::optional<std::int64_t> threshold :
         {std::optional<std::int64_t>(1024), std::optional<std::int64_t>()}) {
        const auto d = tuner::make_sharder({sharding_policy::hybrid, threshold}, cost)->shard(mb);
        EXPECT_EQ(d.applied, sharding_policy::hybrid);
        EXPECT_FALSE(d.fell_back);
        const auto m = tuner::measure_sharding(d.sharded, cost);
        EXPECT_LT(m.predicted_seconds, std::min(seq, doc));
        EXPECT_LE(m.token_imbalance, 1.01); // tiny documents even the tokens out too
    }
}

TEST(Sharding, HybridFallsBackToTheBetterWhenItsLayoutIsWorse) {
    // Threshold above every length: the 64K document stays whole on one rank, far worse than
    // per-doc; the sharder must fall back to the better of per-seq and per-doc.
    std::vector<std::int64_t> lengths(10, 3000);
    lengths.push_back(65536);
    const auto mb = make_mb(lengths);
    const auto cost = make_cost(4);
    const double raw =
        tuner::measure_sharding(tuner::shard_hybrid(mb, 1 << 20, cost), cost).predicted_seconds;
    const double seq = tuner::measure_sharding(tuner::shard_per_seq(mb, 4), cost).predicted_seconds;
    const double doc = tuner::measure_sharding(tuner::shard_per_doc(mb, 4), cost).predicted_seconds;
    ASSERT_GT(raw, std::min(seq, doc));
    const auto d = tuner::make_sharder({sharding_policy::hybrid, 1 << 20}, cost)->shard(mb);
    EXPECT_TRUE(d.fell_back);
    EXPECT_NE(d.applied, sharding_policy::hybrid);
    EXPECT_DOUBLE_EQ(tuner::measure_sharding(d.sharded, cost).predicted_seconds,
                     std::min(seq, doc));
}

TEST(Sharding, FindShardingErrorNamesTheProblem) {
    const auto mb = make_mb({10});
    sharded_micro_batch s;
    s.ranks.resize(2);
    s.ranks[0].chunks = {{100, 0, 6}};
    s.ranks[1].chunks = {{100, 5, 5}};
    EXPECT_NE(tuner::find_sharding_error(mb, s).value_or("").find("token 5 is held twice"),
              std::string::npos);
    s.ranks[1].chunks = {{100, 7, 3}};
    EXPECT_NE(tuner::find_sharding_error(mb, s).value_or("").find("token 6 is held by no rank"),
              std::string::npos);
    s.ranks[1].chunks = {{999, 0, 4}};
    EXPECT_NE(tuner::find_sharding_error(mb, s).value_or("").find("unknown document 999"),
              std::string::npos);
}

TEST(ShardingSpec, NamesAndJsonRoundTrip) {
    for (const auto& name : tuner::sharding_policy_names())
        EXPECT_EQ(tuner::to_string(tuner::parse_sharding_policy(name, "--policy")), name);
    try {
        (void)tuner::parse_sharding_policy("zigzag", "--policy");
        FAIL();
    } catch (const input_error& e) {
        EXPECT_NE(std::string(e.what()).find("per-seq, per-doc, adaptive, hybrid"),
                  std::string::npos)
            << e.what();
    }
    for (auto spec : {tuner::sharding_spec{sharding_policy::per_doc, {}},
                      tuner::sharding_spec{sharding_policy::hybrid, {}},
                      tuner::sharding_spec{sharding_policy::hybrid, 8192, 1.25}}) {
        auto back = tuner::sharding_spec_from_json(tuner::to_json(spec), "plan.jsonl:1");
        EXPECT_EQ(back.policy, spec.policy);
        EXPECT_EQ(back.hybrid_threshold_tokens, spec.hybrid_threshold_tokens);
        EXPECT_EQ(back.hybrid_max_token_imbalance, spec.hybrid_max_token_imbalance);
    }
    EXPECT_EQ(tuner::parse_hybrid_threshold("8k", "--hybrid-threshold"), 8192);
    EXPECT_EQ(tuner::parse_hybrid_threshold("auto", "--hybrid-threshold"), std::nullopt);
    try {
        (void)tuner::sharding_spec_from_json(
            nlohmann::json{{"policy", "hybrid"}, {"hybrid_threshold_tokens", -3}},
            "plan.jsonl:1:$.sharding");
        FAIL();
    } catch (const input_error& e) {
        EXPECT_NE(std::string(e.what()).find("plan.jsonl:1:$.sharding"), std::string::npos);
        EXPECT_NE(std::string(e.what()).find("found -3"), std::string::npos);
    }
}

TEST(ShardRun, SummaryAggregatesEveryMicroBatchOfEveryReplica) {
    std::mt19937_64 rng(11);
    const int cp = 4;
    const auto cost = make_cost(cp);
    auto adaptive = tuner::make_sharder({sharding_policy::adaptive, {}}, cost);
    runtime::global_batch step;
    step.step = 3;
    step.replicas.resize(2);
    for (auto& rep : step.replicas)
        for (int i = 0; i < 5; ++i)
            rep.micro_batches.push_back(random_mb(rng, cp));
    tuner::shard_run_accumulator acc;
    std::vector<tuner::shard_record> seen;
    tuner::shard_step(step, *adaptive, cost, acc,
                      [&](const tuner::shard_record& r) { seen.push_back(r); });
    const auto s = acc.summary();
    ASSERT_EQ(seen.size(), 10u);
    EXPECT_EQ(s.micro_batches, 10);
    double imbalance_sum = 0.0, worst = 0.0, seconds = 0.0;
    std::int64_t tokens = 0;
    for (const auto& r : seen) {
        EXPECT_EQ(r.step, 3);
        const auto& mb = step.replicas[static_cast<std::size_t>(r.replica)]
                             .micro_batches[static_cast<std::size_t>(r.micro_batch)];
        EXPECT_EQ(r.tokens, mb.tokens());
        const auto m = tuner::measure_sharding(adaptive->shard(mb).sharded, cost);
        EXPECT_DOUBLE_EQ(r.metrics.attention_imbalance, m.attention_imbalance);
        imbalance_sum += m.attention_imbalance;
        worst = std::max(worst, m.attention_imbalance);
        seconds += m.predicted_seconds;
        tokens += mb.tokens();
    }
    EXPECT_DOUBLE_EQ(s.mean_attention_imbalance, imbalance_sum / 10.0);
    EXPECT_DOUBLE_EQ(s.worst_attention_imbalance, worst);
    EXPECT_NEAR(s.predicted_seconds, seconds, 1e-12);
    EXPECT_EQ(s.tokens, tokens);
    EXPECT_GE(s.weighted_attention_imbalance, 1.0);
    EXPECT_LE(s.weighted_attention_imbalance, s.worst_attention_imbalance);
    EXPECT_EQ(s.applied[0] + s.applied[1], 10); // adaptive applies per-seq or per-doc only
}

TEST(Sharding, AMicroBatchASharderCannotNameIsRefused) {
    EXPECT_NO_THROW(tuner::check_shardable(make_mb({5, 7, 9})));
    auto twice = make_mb({5, 7, 9});
    twice.docs[2].id = twice.docs[0].id;
    try {
        tuner::check_shardable(twice);
        FAIL() << "a repeated id was accepted";
    } catch (const input_error& e) {
        EXPECT_NE(std::string(e.what()).find("documents 0 and 2 have the same id 100"),
                  std::string::npos)
            << e.what();
    }
    EXPECT_THROW(tuner::check_shardable(make_mb({5, 0})), input_error);
    auto negative = make_mb({5});
    negative.docs[0].id = -3;
    EXPECT_THROW(tuner::check_shardable(negative), input_error);
}

} // namespace
