// Internal seam between the host wrappers of the CUDA attention (kernels/cuda/attention_cuda.cpp,
// C++20) and the kernels (kernels/attention_fwd.cu, attention_bwd.cu, attention_simt.cu, C++17):
// plain argument structs of device pointers and launch functions that return the cudaError_t of
// the launch as an int. No CUDA header, so either side includes it. Callers outside kernels/ use
// kernels/cuda_ops.hpp instead.
#pragma once

#include "kernels/attention_tiles.hpp"
#include "kernels/bf16.hpp"

#include <cstdint>

struct CUstream_st;

namespace wlb::kernels::cuda_detail {

using stream_t = CUstream_st*;

/// Row-major token-major activations: row t of q holds heads * head_dim values, head h at
/// columns [h * head_dim, (h + 1) * head_dim); ld* are row strides in elements.
struct attention_fwd_args {
    const attention_chunk_desc* chunks = nullptr; ///< device
    const attention_tile* tiles = nullptr;        ///< device, forward tiles
    int tile_count = 0;
    int heads = 1;
    int head_dim = 64;
    float scale = 1.0f;
    const bf16* q = nullptr;
    std::int64_t ldq = 0;
    const bf16* k = nullptr;
    std::int64_t ldk = 0;
    const bf16* v = nullptr;
    std::int64_t ldv = 0;
    bf16* out = nullptr;
    std::int64_t ldo = 0;
    float* lse = nullptr; ///< total_q x heads, natural log of the scaled scores' sum of exp
};

struct attention_bwd_args {
    const attention_chunk_desc* chunks = nullptr;
    const attention_tile* key_tiles = nullptr; ///< backward tiles
    int key_tile_count = 0;
    const attention_tile* query_tiles = nullptr; ///< forward tiles (the SIMT dQ pass)
    int query_tile_count = 0;
    std::int64_t total_q = 0;
    int heads = 1;
    int head_dim = 64;
    float scale = 1.0f;
    const bf16* q = nullptr;
    std::int64_t ldq = 0;
    const bf16* k = nullptr;
    std::int64_t ldk = 0;
    const bf16* v = nullptr;
    std::int64_t ldv = 0;
    const bf16* out = nullptr;
    std::int64_t ldo = 0;
    const bf16* dout = nullptr;
    std::int64_t lddo = 0;
    const float* lse = nullptr;
    float* delta = nullptr;    ///< workspace, total_q x heads: rowsum(dO * O)
    float* dq_accum = nullptr; ///< workspace, total_q x heads * head_dim (MMA variant)
    bf16* dq = nullptr;
    std::int64_t lddq = 0;
    bf16* dk = nullptr;
    std::int64_t lddk = 0;
    bf16* dv = nullptr;
    std::int64_t lddv = 0;
};

/// Tensor-core (mma.sync bf16, sm_80+) variants for head_dim 64 and 128, 16-byte aligned rows.
int attention_fwd_mma(const attention_fwd_args& args, stream_t stream);
/// Includes the delta pass, the dQ accumulator reset and its conversion to bf16.
int attention_bwd_mma(const attention_bwd_args& args, stream_t stream);
/// Scalar fp32 variants for any head_dim up to simt_max_head_dim and any alignment.
int attention_fwd_simt(const attention_fwd_args& args, stream_t stream);
int attention_bwd_simt(const attention_bwd_args& args, stream_t stream);
/// delta = rowsum(dO * O) per row and head (both backward variants run it first).
int attention_bwd_delta(const attention_bwd_args& args, stream_t stream);

inline constexpr int simt_max_head_dim = 256;

} // namespace wlb::kernels::cuda_detail
