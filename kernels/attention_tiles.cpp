#include "kernels/attention_tiles.hpp"

#include "base/error.hpp"
#include "kernels/ops.hpp"

#include <algorithm>
#include <limits>

namespace wlb::kernels {

namespace {

struct weighted_tile {
    attention_tile tile;
    std::int64_t weight = 0; // (query, key) block pairs, the tile's work up to the diagonal
};

std::vector<attention_tile> heaviest_first(std::vector<weighted_tile> tiles) {
    // Stable: equal weights keep chunk order, so the order is deterministic.
    std::stable_sort(
        tiles.begin(), tiles.end(),
        [](const weighted_tile& a, const weighted_tile& b) { return a.weight > b.weight; });
    std::vector<attention_tile> out;
    out.reserve(tiles.size());
    for (const auto& t : tiles)
        out.push_back(t.tile);
    return out;
}

} // namespace

attention_tiling make_attention_tiling(const attention_chunks& ch, std::int64_t fwd_rows,
                                       std::int64_t bwd_keys) {
    ch.validate();
    WLB_EXPECTS(fwd_rows > 0 && bwd_keys > 0, "attention tiles of {} rows and {} keys", fwd_rows,
                bwd_keys);
    constexpr std::int64_t max_rows = std::numeric_limits<std::int32_t>::max();
    WLB_EXPECTS(ch.chunk_count() <= max_rows, "{} attention chunks exceed 2^31 - 1",
                ch.chunk_count());
    attention_tiling out;
    out.fwd_rows = fwd_rows;
    out.bwd_keys = bwd_keys;
    std::vector<weighted_tile> fwd, bwd;
    for (index c = 0; c < ch.chunk_count(); ++c) {
        const auto cu = static_cast<std::size_t>(c);
        attention_chunk_desc d;
        d.q_start = ch.cu_seqlens_q[cu];
        d.k_start = ch.cu_seqlens_k[cu];
        d.q_len = ch.cu_seqlens_q[cu + 1] - d.q_start;
        d.k_len = ch.cu_seqlens_k[cu + 1] - d.k_start;
        d.q_offset = ch.q_offsets[cu];
        WLB_EXPECTS(d.q_len <= max_rows && d.k_len <= max_rows,
                    "attention chunk {}: {} queries, {} keys exceed 2^31 - 1", c, d.q_len, d.k_len);
        out.chunks.push_back(d);
        const auto chunk = static_cast<std::int32_t>(c);
        for (std::int64_t b = 0; b < d.q_len; b += fwd_rows) {
            const std::int64_t key_blocks =
                (fwd_tile_keys(d, b, fwd_rows) + bwd_keys - 1) / bwd_keys;
            fwd.push_back({{chunk, static_cast<std::int32_t>(b)}, key_blocks});
        }
        for (std::int64_t b = 0; b < d.k_len; b += bwd_keys) {
            const std::int64_t queries = d.q_len - std::min(d.q_len, bwd_tile_first_query(d, b));
            bwd.push_back({{chunk, static_cast<std::int32_t>(b)}, (queries + 63) / 64});
        }
        out.causal_pairs += d.q_len * d.q_offset + d.q_len * (d.q_len + 1) / 2;
    }
    out.total_q = ch.cu_seqlens_q.back();
    out.total_k = ch.cu_seqlens_k.back();
    out.fwd = heaviest_first(std::move(fwd));
    out.bwd = heaviest_first(std::move(bwd));
    return out;
}

} // namespace wlb::kernels
