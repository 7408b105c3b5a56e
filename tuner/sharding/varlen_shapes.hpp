// What a varlen attention kernel takes for one CP rank's chunks (design.md "Batch"; issue 21):
// FlashAttention's flash_attn_varlen_func (cu_seqlens_q, cu_seqlens_k, max_seqlen_q,
// max_seqlen_k) or a FlexAttention document mask (the chunks' key offsets), as int32, the index
// type those kernels take.
//
// The rank lays out its chunks' queries one after the other, in the rank's chunk order. Chunk c
// holds queries [cu_seqlens_q[c], cu_seqlens_q[c+1]) of the rank's tokens, which are tokens
// q_offsets[c] + i of its document; its keys are tokens [0, q_offsets[c] + q_tokens) of the same
// document (gathered from the CP peers), laid out at [cu_seqlens_k[c], cu_seqlens_k[c+1]) of the
// rank's key buffer. Query i of chunk c attends keys 0 .. q_offsets[c] + i: a causal mask aligned
// to the bottom right of the chunk's (q_tokens x kv_tokens) block, as FlashAttention's causal
// varlen call aligns it when the key length exceeds the query length.
#pragma once

#include "runtime/parallel/batch.hpp"

#include <cstdint>
#include <vector>

namespace wlb::tuner {

struct varlen_shapes {
    std::vector<std::int32_t> cu_seqlens_q; ///< chunks + 1 offsets from 0
    std::vector<std::int32_t> cu_seqlens_k; ///< chunks + 1 offsets from 0
    std::vector<std::int32_t> q_offsets;    ///< chunks: earlier tokens of the chunk's document
    std::int32_t max_seqlen_q = 0;          ///< longest chunk, in queries
    std::int32_t max_seqlen_k = 0;          ///< longest chunk, in keys
};

/// The shapes of `shard`'s chunks. Throws wlb::input_error when a total does not fit an int32
/// (a rank of more than 2^31 - 1 query or key tokens).
[[nodiscard]] varlen_shapes make_varlen_shapes(const runtime::cp_shard& shard);

} // namespace wlb::tuner
