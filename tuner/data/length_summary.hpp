// Statistics of a list of document lengths: what `wlbtune data` reports and what tests compare
// against the reference distribution.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <vector>

namespace wlb::tuner {

struct length_bucket {
    std::int64_t lower_tokens = 0; ///< inclusive; a power of two (the first bucket starts at 1)
    std::int64_t upper_tokens = 0; ///< exclusive
    std::int64_t documents = 0;
    std::int64_t tokens = 0;
};

struct length_summary {
    std::int64_t documents = 0;
    std::int64_t tokens = 0;
    double mean_tokens = 0;
    std::int64_t min_tokens = 0;
    std::int64_t p50_tokens = 0; ///< nearest-rank percentiles: the ceil(p*n)-th smallest
    std::int64_t p90_tokens = 0;
    std::int64_t p99_tokens = 0;
    std::int64_t max_tokens = 0;
    std::int64_t context_tokens = 0;     ///< the window the "over context" figures refer to
    std::int64_t over_32k_documents = 0; ///< longer than 32,768 tokens
    std::int64_t over_64k_documents = 0; ///< longer than 65,536 tokens
    std::int64_t over_context_documents = 0;
    std::int64_t over_32k_tokens = 0; ///< tokens in documents longer than 32,768
    std::int64_t over_64k_tokens = 0;
    std::int64_t over_context_tokens = 0;
    /// log2 buckets: [1, 256), then [2^k, 2^(k+1)) up to the one holding the maximum; empty
    /// buckets inside the range are kept.
    std::vector<length_bucket> histogram;
};

/// Summarizes lengths (any order; the vector is reordered). Lengths must be >= 1.
length_summary summarize_lengths(std::vector<std::int64_t> lengths, std::int64_t context_tokens);

/// Nearest-rank percentile of sorted lengths: the ceil(p*n)-th smallest (p in (0, 1]).
std::int64_t nearest_rank_percentile(const std::vector<std::int64_t>& sorted, double p);

nlohmann::json to_json(const length_summary& s);

} // namespace wlb::tuner
