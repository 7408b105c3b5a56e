// length_summary against brute-force counts.
#include "tuner/data/length_summary.hpp"

#include <algorithm>
#include <gtest/gtest.h>
#include <random>

namespace tuner = wlb::tuner;

namespace {

TEST(LengthSummary, MatchesBruteForce) {
    std::mt19937_64 rng(4);
    for (int round = 0; round < 20; ++round) {
        std::vector<std::int64_t> l(1 + rng() % 3000);
        for (auto& x : l)
            x = 1 + static_cast<std::int64_t>(rng() % (1 + rng() % 200000));
        const std::int64_t context = 50000;
        const auto s = tuner::summarize_lengths(l, context);
        std::int64_t tokens = 0, over32 = 0, over_ctx_tokens = 0, bucket_docs = 0,
                     bucket_tokens = 0;
        for (auto x : l) {
            tokens += x;
            over32 += x > 32768;
            over_ctx_tokens += x > context ? x : 0;
        }
        for (const auto& b : s.histogram) {
            bucket_docs += b.documents;
            bucket_tokens += b.tokens;
            const auto in = std::count_if(l.begin(), l.end(), [&](auto x) {
                return x >= b.lower_tokens && x < b.upper_tokens;
            });
            EXPECT_EQ(b.documents, in);
        }
        EXPECT_EQ(bucket_docs, static_cast<std::int64_t>(l.size()));
        EXPECT_EQ(bucket_tokens, tokens);
        EXPECT_EQ(s.tokens, tokens);
        EXPECT_EQ(s.over_32k_documents, over32);
        EXPECT_EQ(s.over_context_tokens, over_ctx_tokens);
        EXPECT_EQ(s.max_tokens, *std::max_element(l.begin(), l.end()));
        EXPECT_GT(s.histogram.back().upper_tokens, s.max_tokens);
        // nearest rank: at least p of the values are <= it, and fewer than p are < it
        for (auto [p, v] :
             {std::pair{0.5, s.p50_tokens}, {0.9, s.p90_tokens}, {0.99, s.p99_tokens}}) {
            const auto value = v; // clang 14 cannot capture a structured binding
            const auto le = std::count_if(l.begin(), l.end(), [&](auto x) { return x <= value; });
            const auto lt = std::count_if(l.begin(), l.end(), [&](auto x) { return x < value; });
            EXPECT_GE(double(le), p * double(l.size()));
            EXPECT_LT(double(lt), p * double(l.size()));
        }
    }
}

TEST(LengthSummary, EmptyInputHasNoHistogram) {
    const auto s = tuner::summarize_lengths({}, 100);
    EXPECT_EQ(s.documents, 0);
    EXPECT_TRUE(s.histogram.empty());
}

} // namespace
