#include "tuner/sharding/shard_per_seq.hpp"

#include "base/error.hpp"

#include <algorithm>
#include <vector>

namespace wlb::tuner {

runtime::sharded_micro_batch shard_per_seq(const runtime::micro_batch& mb, int cp) {
    WLB_EXPECTS(cp >= 1, "cp must be positive, got {}", cp);
    const std::int64_t total = mb.tokens();
    const std::int64_t n = cp;

    // Chunk k of the 2cp chunks: its length and the rank that holds it.
    std::vector<std::int64_t> chunk_tokens(static_cast<std::size_t>(2 * n));
    std::vector<int> owner(static_cast<std::size_t>(2 * n));
    for (std::int64_t i = 0; i < n; ++i) {
        const std::int64_t rank_tokens = total / n + (i < total % n ? 1 : 0);
        const auto front = static_cast<std::size_t>(i);
        const auto back = static_cast<std::size_t>(2 * n - 1 - i);
        chunk_tokens[front] = (rank_tokens + 1) / 2;
        chunk_tokens[back] = rank_tokens / 2;
        owner[front] = owner[back] = static_cast<int>(i);
    }

    runtime::sharded_micro_batch out;
    out.ranks.resize(static_cast<std::size_t>(cp));
    // Walk the packed sequence: document by document, cutting at chunk boundaries.
    std::size_t k = 0;
    std::int64_t left_in_chunk = chunk_tokens[0];
    for (const auto& d : mb.docs) {
        std::int64_t offset = 0;
        while (offset < d.tokens) {
            while (left_in_chunk == 0) {
                ++k;
                WLB_EXPECTS(k < chunk_tokens.size(), "per-seq ran out of chunks at doc {}", d.id);
                left_in_chunk = chunk_tokens[k];
            }
            const std::int64_t take = std::min(left_in_chunk, d.tokens - offset);
            append_chunk(out.ranks[static_cast<std::size_t>(owner[k])], {d.id, offset, take});
            offset += take;
            left_in_chunk -= take;
        }
    }
    return out;
}

} // namespace wlb::tuner
