// How the CUDA attention kernels cut varlen causal attention (kernels/ops.hpp, attention_chunks)
// into thread-block tiles. Host code, no CUDA header, C++17 (the .cu files include it for the
// plain structs), built into the host core so unit tests check the cover without a GPU.
//
// Forward: every chunk's queries in tiles of `fwd_rows` (128, FlashAttention's query tile); a
//   tile of rows [begin, begin + rows) reads keys [0, q_offset + begin + rows) of its chunk's
//   key segment, the keys its last query sees.
// Backward: every chunk's key segment in tiles of `bwd_keys` (64); a tile of keys
//   [begin, begin + keys) gets gradient from the queries [max(0, begin - q_offset), q_len) of its
//   chunk (query i sees key j when j <= q_offset + i). Tiles whose keys no query sees are kept:
//   they write the zero gradient of masked keys.
// Both lists are ordered heaviest first (most (query, key) block pairs), so the longest tiles
// start in the first wave and short ones fill in behind them.
#pragma once

#include <cstdint>
#include <vector>

namespace wlb::kernels {

struct attention_chunks;

inline constexpr std::int64_t attention_fwd_tile_rows = 128;
inline constexpr std::int64_t attention_bwd_tile_keys = 64;

/// One chunk as the kernels read it (row indices into the packed q and k buffers).
struct attention_chunk_desc {
    std::int64_t q_start = 0;  ///< first query row (cu_seqlens_q[c])
    std::int64_t k_start = 0;  ///< first key row (cu_seqlens_k[c])
    std::int64_t q_len = 0;    ///< queries of the chunk
    std::int64_t k_len = 0;    ///< keys of its segment (>= q_offset + q_len when q_len > 0)
    std::int64_t q_offset = 0; ///< document position of its first query
};

/// One thread block's work: a chunk and the first query row (forward) or key row (backward) of
/// the tile, relative to the chunk.
struct attention_tile {
    std::int32_t chunk = 0;
    std::int32_t begin = 0;
};

struct attention_tiling {
    std::int64_t fwd_rows = attention_fwd_tile_rows;
    std::int64_t bwd_keys = attention_bwd_tile_keys;
    std::vector<attention_chunk_desc> chunks;
    std::vector<attention_tile> fwd; ///< heaviest first
    std::vector<attention_tile> bwd; ///< heaviest first
    std::int64_t total_q = 0;
    std::int64_t total_k = 0;
    /// Exact causal (query, key) pairs per head: sum over chunks of causal_pairs(q_len, q_offset).
    std::int64_t causal_pairs = 0;
};

/// Throws wlb::internal_error when `chunks` fails attention_chunks::validate() or a chunk's
/// length exceeds 2^31 - 1 rows.
attention_tiling make_attention_tiling(const attention_chunks& chunks,
                                       std::int64_t fwd_rows = attention_fwd_tile_rows,
                                       std::int64_t bwd_keys = attention_bwd_tile_keys);

/// Query rows of forward tile `begin` of chunk `c`.
inline std::int64_t fwd_tile_rows(const attention_chunk_desc& c, std::int64_t begin,
                                  std::int64_t fwd_rows) {
    const std::int64_t left = c.q_len - begin;
    return left < fwd_rows ? left : fwd_rows;
}
/// Keys forward tile `begin` reads: every key its last query sees.
inline std::int64_t fwd_tile_keys(const attention_chunk_desc& c, std::int64_t begin,
                                  std::int64_t fwd_rows) {
    return c.q_offset + begin + fwd_tile_rows(c, begin, fwd_rows);
}
/// Key rows of backward tile `begin` of chunk `c`.
inline std::int64_t bwd_tile_keys(const attention_chunk_desc& c, std::int64_t begin,
                                  std::int64_t bwd_keys) {
    const std::int64_t left = c.k_len - begin;
    return left < bwd_keys ? left : bwd_keys;
}
/// First query of chunk `c` that sees key `begin` (the backward tile's queries run from it to
/// q_len; none when it is >= q_len).
inline std::int64_t bwd_tile_first_query(const attention_chunk_desc& c, std::int64_t begin) {
    const std::int64_t first = begin - c.q_offset;
    return first > 0 ? first : 0;
}

} // namespace wlb::kernels
