// document_stream: numbering, order, context policy and limits never lose a document.
#include "base/error.hpp"
#include "tuner/data/document_stream.hpp"
#include "tuner/data/synthetic_source.hpp"

#include <algorithm>
#include <gtest/gtest.h>
#include <map>
#include <numeric>

namespace tuner = wlb::tuner;

namespace {

std::vector<std::int64_t> lengths_for(std::uint64_t seed, int n) {
    std::mt19937_64 rng(seed);
    std::vector<std::int64_t> out(static_cast<std::size_t>(n));
    for (auto& l : out)
        l = 1 + static_cast<std::int64_t>(rng() % 5000); // many over a small context
    return out;
}

tuner::document_stream stream_of(std::vector<std::int64_t> lengths, tuner::stream_options o) {
    return tuner::document_stream(std::make_unique<tuner::vector_source>(std::move(lengths)), o);
}

std::vector<tuner::stream_item> drain(tuner::document_stream& s) {
    std::vector<tuner::stream_item> out;
    std::int64_t step = 0;
    while (auto item = s.next_item(step))
        out.push_back(*item), step = static_cast<std::int64_t>(out.size()) / 7;
    return out;
}

TEST(DocumentStream, IdsAreStreamPositionsAndStepsAreStamped) {
    auto s = stream_of({5, 6, 7}, {});
    for (std::int64_t i = 0; i < 3; ++i) {
        auto d = s.next(40 + i);
        ASSERT_TRUE(d);
        EXPECT_EQ(d->id, i);
        EXPECT_EQ(d->drawn_step, 40 + i);
        EXPECT_EQ(d->tokens, 5 + i);
    }
    EXPECT_FALSE(s.next(0));
    EXPECT_FALSE(s.next(0)) << "the end stays the end";
}

TEST(DocumentStream, TruncateKeepsEveryDocumentAndCountsDroppedTokens) {
    for (std::uint64_t seed = 1; seed <= 20; ++seed) {
        const auto in = lengths_for(seed, 300);
        const std::int64_t context = 1 + static_cast<std::int64_t>(seed * 157 % 4000);
        auto s = stream_of(in, {.context_tokens = context});
        const auto out = drain(s);
        ASSERT_EQ(out.size(), in.size());
        const auto& st = s.stats();
        std::int64_t in_tokens = std::accumulate(in.begin(), in.end(), std::int64_t{0});
        std::int64_t over = 0;
        for (std::size_t i = 0; i < in.size(); ++i) {
            EXPECT_EQ(out[i].doc.tokens, std::min(in[i], context));
            EXPECT_EQ(out[i].source_tokens, in[i]);
            over += in[i] > context;
        }
        EXPECT_EQ(st.source_tokens, in_tokens);
        EXPECT_EQ(st.source_tokens, st.tokens + st.dropped_tokens);
        EXPECT_EQ(st.truncated_documents, over);
        EXPECT_EQ(st.over_context_documents, over);
        EXPECT_EQ(st.documents, static_cast<std::int64_t>(in.size()));
    }
}

TEST(DocumentStream, SplitPiecesSumToTheOriginalAndFitTheContext) {
    for (std::uint64_t seed = 1; seed <= 20; ++seed) {
        const auto in = lengths_for(seed, 300);
        const std::int64_t context = 1 + static_cast<std::int64_t>(seed * 311 % 3000);
        auto s = stream_of(in, {.context_tokens = context, .policy = tuner::context_policy::split});
        const auto out = drain(s);
        std::map<std::int64_t, std::int64_t> sum_by_source;
        std::map<std::int64_t, std::int64_t> pieces_by_source;
        for (std::size_t i = 0; i < out.size(); ++i) {
            EXPECT_EQ(out[i].doc.id, static_cast<std::int64_t>(i));
            EXPECT_GE(out[i].doc.tokens, 1);
            EXPECT_LE(out[i].doc.tokens, context);
            EXPECT_EQ(out[i].piece, pieces_by_source[out[i].source_index]++);
            sum_by_source[out[i].source_index] += out[i].doc.tokens;
        }
        ASSERT_EQ(sum_by_source.size(), in.size());
        std::int64_t pieces_of_split = 0;
        for (std::size_t i = 0; i < in.size(); ++i) {
            EXPECT_EQ(sum_by_source[static_cast<std::int64_t>(i)], in[i]);
            EXPECT_EQ(pieces_by_source[static_cast<std::int64_t>(i)],
                      (in[i] + context - 1) / context);
            if (in[i] > context)
                pieces_of_split += pieces_by_source[static_cast<std::int64_t>(i)];
        }
        const auto& st = s.stats();
        EXPECT_EQ(st.dropped_tokens, 0);
        EXPECT_EQ(st.tokens, st.source_tokens);
        EXPECT_EQ(st.split_pieces, pieces_of_split);
        EXPECT_EQ(st.documents, static_cast<std::int64_t>(out.size()));
    }
}

TEST(DocumentStream, ShuffleIsAPermutationFixedBySeed) {
    const auto in = lengths_for(3, 1000);
    auto order = [&](std::uint64_t seed) {
        auto s = stream_of(in, {.context_tokens = 1 << 20, .shuffle_seed = seed});
        std::vector<std::int64_t> out;
        while (auto d = s.next(0))
            out.push_back(d->tokens);
        return out;
    };
    const auto a = order(1);
    auto sorted_in = in, sorted_a = a;
    std::sort(sorted_in.begin(), sorted_in.end());
    std::sort(sorted_a.begin(), sorted_a.end());
    EXPECT_EQ(sorted_a, sorted_in) << "a permutation: same multiset";
    EXPECT_NE(a, in) << "not the stored order";
    EXPECT_EQ(a, order(1));
    EXPECT_NE(a, order(2));
}

TEST(DocumentStream, ShuffleOfDistinctValuesHitsEveryPositionEvenly) {
    // Fisher-Yates with an unbiased index: over many seeds, element 0 lands at each of 5
    // positions with probability 1/5 (2,000 seeds: expected 400, standard deviation 18).
    std::vector<int> where(5, 0);
    for (std::uint64_t seed = 0; seed < 2000; ++seed) {
        auto s = stream_of({1, 2, 3, 4, 5}, {.shuffle_seed = seed});
        for (int pos = 0; auto d = s.next(0); ++pos)
            if (d->tokens == 1)
                ++where[static_cast<std::size_t>(pos)];
    }
    for (int c : where)
        EXPECT_NEAR(c, 400, 90);
}

TEST(DocumentStream, RewindReplaysIdenticalDocuments) {
    for (bool shuffle : {false, true}) {
        tuner::stream_options o{.context_tokens = 1000, .policy = tuner::context_policy::split};
        if (shuffle)
            o.shuffle_seed = 5;
        auto s = tuner::document_stream(std::make_unique<tuner::synthetic_source>(
                                            tuner::parse_synthetic_spec("lognormal?n=300&mu=6")),
                                        o);
        const auto first = drain(s);
        const auto stats = s.stats();
        s.rewind();
        const auto second = drain(s);
        ASSERT_EQ(first.size(), second.size());
        for (std::size_t i = 0; i < first.size(); ++i) {
            EXPECT_EQ(first[i].doc.id, second[i].doc.id);
            EXPECT_EQ(first[i].doc.tokens, second[i].doc.tokens);
        }
        EXPECT_EQ(s.stats().tokens, stats.tokens);
        EXPECT_EQ(s.stats().split_pieces, stats.split_pieces);
    }
}

TEST(DocumentStream, LimitsStopBetweenWholeDocuments) {
    const std::vector<std::int64_t> in = {100, 250, 300, 50, 70};
    auto by_count = stream_of(
        in, {.context_tokens = 100, .policy = tuner::context_policy::split, .max_documents = 2});
    const auto a = drain(by_count);
    EXPECT_EQ(by_count.stats().source_documents, 2);
    EXPECT_EQ(by_count.stats().tokens, 350) << "all pieces of the second document";
    EXPECT_EQ(a.size(), 4u);
    auto by_tokens = stream_of(in, {.max_tokens = 351});
    drain(by_tokens);
    EXPECT_EQ(by_tokens.stats().source_documents, 3); // 100 + 250 < 351, then 300 crosses it
    EXPECT_EQ(by_tokens.stats().tokens, 650);
    EXPECT_EQ(by_tokens.size_hint(), 5);
    auto hinted = stream_of(in, {.max_documents = 2});
    EXPECT_EQ(hinted.size_hint(), 2);
}

TEST(DocumentStream, EmptySourceDocumentsAreSkippedAndCounted) {
    auto s = stream_of({0, 4, 0, 0, 6}, {});
    const auto out = drain(s);
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(out[0].doc.id, 0);
    EXPECT_EQ(out[1].doc.id, 1);
    EXPECT_EQ(out[1].source_index, 4);
    EXPECT_EQ(s.stats().empty_documents, 3);
    EXPECT_EQ(s.stats().source_documents, 5);
}

TEST(DocumentStream, BadOptionsAreInputErrors) {
    EXPECT_THROW(stream_of({1}, {.context_tokens = 0}), wlb::input_error);
    EXPECT_THROW(stream_of({1}, {.max_documents = -1}), wlb::input_error);
    EXPECT_THROW(tuner::parse_context_policy("drop"), wlb::input_error);
    EXPECT_EQ(tuner::parse_context_policy("split"), tuner::context_policy::split);
}

} // namespace
