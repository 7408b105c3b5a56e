// Varlen causal attention forward on tensor cores (FlashAttention-2's algorithm).
//
// Variants (one kernel template, two instantiations):
//   fwd_mma<64>, fwd_mma<128>  head_dim 64 or 128; bf16 q, k, v, out with 16-byte aligned rows
//                              (row strides a multiple of 8 elements); sm_80 or later
//                              (mma.sync.m16n8k16 bf16, fp32 accumulation); 18 KiB (64) or
//                              34 KiB (128) of static shared memory; 256 threads.
// Other head sizes and alignments take the scalar variant in kernels/attention_simt.cu.
//
// One thread block per (forward tile, head): 128 query rows (8 warps x 16 rows), keys streamed
// in blocks of 64 through shared memory, scores and the output accumulator in registers, online
// softmax in base 2 with the scale folded in. The causal document mask is the comparison
// key <= q_offset + row; a warp skips key blocks past its last query. Each query row sees key 0,
// so every row's running max is finite from the first block on and no -inf arithmetic occurs.
#include "kernels/attention_kernels.hpp"
#include "kernels/mma_bf16.cuh"

#include <cuda_runtime.h>

namespace wlb::kernels::cuda_detail {

namespace {

constexpr float log2e = 1.4426950408889634f;
constexpr float ln2 = 0.6931471805599453f;

template <int D>
__global__ void __launch_bounds__(256) fwd_mma(const attention_fwd_args a) {
    constexpr int rows_per_tile = 128; // must equal attention_fwd_tile_rows
    constexpr int key_block = 64;
    constexpr int ld = D + 8; // shared row stride: conflict-free fragment loads
    __shared__ __align__(16) std::uint16_t smem[2 * key_block * ld];
    std::uint16_t* ks = smem;
    std::uint16_t* vs = smem + key_block * ld;

    const attention_tile tile = a.tiles[blockIdx.x];
    const attention_chunk_desc c = a.chunks[tile.chunk];
    const int head = blockIdx.y;
    const int warp = threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    const int g = lane / 4;
    const int t = lane % 4;

    const std::int64_t q0 = tile.begin;
    const int rows = static_cast<int>(min(static_cast<std::int64_t>(rows_per_tile), c.q_len - q0));
    const std::int64_t pos0 = c.q_offset + q0; // document position of the tile's first query
    const std::int64_t keys = pos0 + rows;     // keys the tile's last query sees
    const auto* qg =
        reinterpret_cast<const std::uint16_t*>(a.q) + (c.q_start + q0) * a.ldq + head * D;
    const auto* kg = reinterpret_cast<const std::uint16_t*>(a.k) + c.k_start * a.ldk + head * D;
    const auto* vg = reinterpret_cast<const std::uint16_t*>(a.v) + c.k_start * a.ldv + head * D;

    // Q fragments, staged through the (not yet used) K and V buffers: 128 rows of ld.
    copy_rows<256>(smem, ld, qg, a.ldq, rows, rows_per_tile, D);
    __syncthreads();
    const int r0 = warp * 16;
    std::uint32_t qa[D / 16][4];
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk)
        load_a(qa[kk], smem, ld, r0, kk * 16, g, t);
    __syncthreads();

    const std::int64_t pos_lo = pos0 + r0 + g; // this thread's two rows: g and g + 8
    const std::int64_t pos_hi = pos_lo + 8;
    const std::int64_t warp_last = pos0 + r0 + 15;
    const float scale_log2 = a.scale * log2e;

    float o[D / 8][4];
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt)
        o[dt][0] = o[dt][1] = o[dt][2] = o[dt][3] = 0.f;
    float m[2] = {-INFINITY, -INFINITY};
    float l[2] = {0.f, 0.f}; // this thread's share of the row sums; reduced at the end

    for (std::int64_t j0 = 0; j0 < keys; j0 += key_block) {
        const int block_keys =
            static_cast<int>(min(static_cast<std::int64_t>(key_block), keys - j0));
        copy_rows<256>(ks, ld, kg + j0 * a.ldk, a.ldk, block_keys, key_block, D);
        copy_rows<256>(vs, ld, vg + j0 * a.ldv, a.ldv, block_keys, key_block, D);
        __syncthreads();
        if (j0 <= warp_last) {
            float s[key_block / 8][4];
#pragma unroll
            for (int nt = 0; nt < key_block / 8; ++nt)
                s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
#pragma unroll
            for (int kk = 0; kk < D / 16; ++kk) {
#pragma unroll
                for (int nt = 0; nt < key_block / 8; ++nt) {
                    std::uint32_t b[2];
                    load_b_from_rows(b, ks, ld, nt * 8, kk * 16, g, t);
                    mma_16816(s[nt], qa[kk], b);
                }
            }
            float mx[2] = {m[0], m[1]};
#pragma unroll
            for (int nt = 0; nt < key_block / 8; ++nt) {
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const std::int64_t j = j0 + nt * 8 + 2 * t + (e & 1);
                    const bool visible = j <= ((e & 2) ? pos_hi : pos_lo);
                    const float x = visible ? s[nt][e] * scale_log2 : -INFINITY;
                    s[nt][e] = x;
                    mx[e >> 1] = fmaxf(mx[e >> 1], x);
                }
            }
            float alpha[2];
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 1));
                mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 2));
                alpha[h] = exp2f(m[h] - mx[h]); // 0 on the first block (m = -inf, mx finite)
                m[h] = mx[h];
                l[h] *= alpha[h];
            }
#pragma unroll
            for (int nt = 0; nt < key_block / 8; ++nt) {
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const float p = exp2f(s[nt][e] - m[e >> 1]);
                    s[nt][e] = p;
                    l[e >> 1] += p;
                }
            }
#pragma unroll
            for (int dt = 0; dt < D / 8; ++dt) {
                o[dt][0] *= alpha[0];
                o[dt][1] *= alpha[0];
                o[dt][2] *= alpha[1];
                o[dt][3] *= alpha[1];
            }
#pragma unroll
            for (int kk = 0; kk < key_block / 16; ++kk) {
                std::uint32_t pa[4];
                c_pair_to_a(pa, s[2 * kk], s[2 * kk + 1]);
#pragma unroll
                for (int dt = 0; dt < D / 8; ++dt) {
                    std::uint32_t b[2];
                    load_b_from_columns(b, vs, ld, kk * 16, dt * 8, g, t);
                    mma_16816(o[dt], pa, b);
                }
            }
        }
        __syncthreads();
    }

#pragma unroll
    for (int h = 0; h < 2; ++h) {
        l[h] += __shfl_xor_sync(0xffffffffu, l[h], 1);
        l[h] += __shfl_xor_sync(0xffffffffu, l[h], 2);
    }
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const int r = r0 + g + 8 * h;
        if (r >= rows)
            continue;
        const float inv = 1.f / l[h];
        const std::int64_t row = c.q_start + q0 + r;
        auto* out = reinterpret_cast<std::uint16_t*>(a.out) + row * a.ldo + head * D;
#pragma unroll
        for (int dt = 0; dt < D / 8; ++dt)
            *reinterpret_cast<std::uint32_t*>(out + dt * 8 + 2 * t) =
                pack_bf16(o[dt][2 * h] * inv, o[dt][2 * h + 1] * inv);
        if (t == 0)
            a.lse[row * a.heads + head] = (m[h] + log2f(l[h])) * ln2;
    }
}

} // namespace

int attention_fwd_mma(const attention_fwd_args& a, stream_t stream) {
    if (a.tile_count == 0)
        return cudaSuccess;
    const dim3 grid(static_cast<unsigned>(a.tile_count), static_cast<unsigned>(a.heads));
    if (a.head_dim == 64)
        fwd_mma<64><<<grid, 256, 0, stream>>>(a);
    else if (a.head_dim == 128)
        fwd_mma<128><<<grid, 256, 0, stream>>>(a);
    else
        return cudaErrorInvalidValue;
    return cudaGetLastError();
}

} // namespace wlb::kernels::cuda_detail
