#include "tuner/data/length_summary.hpp"

#include "base/error.hpp"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

namespace wlb::tuner {

std::int64_t nearest_rank_percentile(const std::vector<std::int64_t>& sorted, double p) {
    WLB_EXPECTS(!sorted.empty() && p > 0 && p <= 1, "percentile {} of {} values", p, sorted.size());
    auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(sorted.size())));
    rank = std::clamp<std::size_t>(rank, 1, sorted.size());
    return sorted[rank - 1];
}

length_summary summarize_lengths(std::vector<std::int64_t> lengths, std::int64_t context_tokens) {
    length_summary s;
    s.context_tokens = context_tokens;
    s.documents = static_cast<std::int64_t>(lengths.size());
    if (lengths.empty())
        return s;
    std::sort(lengths.begin(), lengths.end());
    WLB_EXPECTS(lengths.front() >= 1, "lengths must be >= 1, found {}", lengths.front());
    s.min_tokens = lengths.front();
    s.max_tokens = lengths.back();
    s.p50_tokens = nearest_rank_percentile(lengths, 0.50);
    s.p90_tokens = nearest_rank_percentile(lengths, 0.90);
    s.p99_tokens = nearest_rank_percentile(lengths, 0.99);
    // buckets: [1, 256), [256, 512), ... up to the bucket holding the maximum
    s.histogram.push_back({1, 256, 0, 0});
    while (s.histogram.back().upper_tokens <= s.max_tokens) {
        const auto lower = s.histogram.back().upper_tokens;
        s.histogram.push_back({lower, lower * 2, 0, 0});
    }
    std::size_t b = 0;
    for (auto d : lengths) {
        s.tokens += d;
        while (d >= s.histogram[b].upper_tokens)
            ++b;
        ++s.histogram[b].documents;
        s.histogram[b].tokens += d;
        if (d > 32768) {
            ++s.over_32k_documents;
            s.over_32k_tokens += d;
        }
        if (d > 65536) {
            ++s.over_64k_documents;
            s.over_64k_tokens += d;
        }
        if (d > context_tokens) {
            ++s.over_context_documents;
            s.over_context_tokens += d;
        }
    }
    s.mean_tokens = static_cast<double>(s.tokens) / static_cast<double>(s.documents);
    return s;
}

nlohmann::json to_json(const length_summary& s) {
    const auto share = [&](std::int64_t t) {
        return s.tokens > 0 ? static_cast<double>(t) / static_cast<double>(s.tokens) : 0.0;
    };
    nlohmann::json histogram = nlohmann::json::array();
    for (const auto& b : s.histogram)
        histogram.push_back({{"lower_tokens", b.lower_tokens},
                             {"upper_tokens", b.upper_tokens},
                             {"documents", b.documents},
                             {"tokens", b.tokens}});
    return {{"documents", s.documents},
            {"tokens", s.tokens},
            {"mean_tokens", s.mean_tokens},
            {"min_tokens", s.min_tokens},
            {"p50_tokens", s.p50_tokens},
            {"p90_tokens", s.p90_tokens},
            {"p99_tokens", s.p99_tokens},
            {"max_tokens", s.max_tokens},
            {"context_tokens", s.context_tokens},
            {"over_32k",
             {{"documents", s.over_32k_documents},
              {"tokens", s.over_32k_tokens},
              {"token_share", share(s.over_32k_tokens)}}},
            {"over_64k",
             {{"documents", s.over_64k_documents},
              {"tokens", s.over_64k_tokens},
              {"token_share", share(s.over_64k_tokens)}}},
            {"over_context",
             {{"documents", s.over_context_documents},
              {"tokens", s.over_context_tokens},
              {"token_share", share(s.over_context_tokens)}}},
            {"histogram", histogram}};
}

} // namespace wlb::tuner
