// Varlen causal attention backward on tensor cores (FlashAttention-2's algorithm), and the two
// small passes both backward variants share.
//
// Variants:
//   bwd_delta                 any head_dim; delta = rowsum(dO * O) per query row and head
//                             (fp32), one warp per (row, head), grid-stride (any total_q x
//                             heads on the capped grid). Used by the MMA and SIMT paths.
//   bwd_mma<64>, bwd_mma<128> head_dim 64 or 128; bf16 with 16-byte aligned rows; sm_80 or
//                             later (mma.sync.m16n8k16 bf16, fp32 accumulation); 46 KiB (64) or
//                             78 KiB (128) of dynamic shared memory (opted in at first launch);
//                             128 threads; an fp32 dQ accumulator (total_q x heads x head_dim)
//                             that it zeroes, adds to with atomics and converts to bf16.
//   dq_to_bf16                the conversion, any head_dim.
//
// bwd_mma: one thread block per (backward tile, head): 64 keys (4 warps x 16 keys) stay in
// shared memory while the chunk's queries that see them stream through in blocks of 64. Per
// query block a warp recomputes S^T = K Q^T for its keys, P^T = exp2(S^T - lse) under the
// causal mask, accumulates dV += P^T dO, dP^T = V dO^T, dS^T = P^T (dP^T - delta) and
// dK += dS^T Q in registers, and writes dS to shared memory; then each warp adds the dQ of 16
// query rows, dS K, to the fp32 accumulator. dK is scaled by the softmax scale at the end.
#include "kernels/attention_kernels.hpp"
#include "kernels/mma_bf16.cuh"

#include <cuda_runtime.h>

namespace wlb::kernels::cuda_detail {

namespace {

constexpr float log2e = 1.4426950408889634f;

__global__ void bwd_delta(const attention_bwd_args a) {
    // Grid-stride over (row, head) warps: the grid is capped (blocks_for), and a 256K-token
    // micro-batch of 32 heads already has more pairs than the capped grid has warps.
    const std::int64_t pairs = a.total_q * a.heads;
    const std::int64_t warps_in_grid = static_cast<std::int64_t>(gridDim.x) * blockDim.x / 32;
    const int lane = threadIdx.x % 32;
    for (std::int64_t warp_id =
             (static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
         warp_id < pairs; warp_id += warps_in_grid) {
        const std::int64_t row = warp_id / a.heads;
        const int head = static_cast<int>(warp_id - row * a.heads);
        const auto* o = reinterpret_cast<const __nv_bfloat16*>(a.out) + row * a.ldo +
                        static_cast<std::int64_t>(head) * a.head_dim;
        const auto* d = reinterpret_cast<const __nv_bfloat16*>(a.dout) + row * a.lddo +
                        static_cast<std::int64_t>(head) * a.head_dim;
        float sum = 0.f;
        for (int i = lane; i < a.head_dim; i += 32)
            sum += __bfloat162float(o[i]) * __bfloat162float(d[i]);
#pragma unroll
        for (int off = 16; off > 0; off /= 2)
            sum += __shfl_xor_sync(0xffffffffu, sum, off);
        if (lane == 0)
            a.delta[row * a.heads + head] = sum;
    }
}

__global__ void dq_to_bf16(const attention_bwd_args a) {
    const std::int64_t width = static_cast<std::int64_t>(a.heads) * a.head_dim;
    const std::int64_t n = a.total_q * width;
    for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
         i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
        const std::int64_t row = i / width;
        const std::int64_t col = i - row * width;
        reinterpret_cast<__nv_bfloat16*>(a.dq)[row * a.lddq + col] =
            __float2bfloat16_rn(a.dq_accum[i]);
    }
}

template <int D>
constexpr int bwd_smem_bytes() {
    constexpr int keys = 64, queries = 64, ld = D + 8, lds = keys + 8;
    return (2 * keys + 2 * queries) * ld * 2 + queries * lds * 2 + 2 * queries * 4;
}

template <int D>
__global__ void __launch_bounds__(128) bwd_mma(const attention_bwd_args a) {
    constexpr int key_block = 64; // must equal attention_bwd_tile_keys
    constexpr int query_block = 64;
    constexpr int ld = D + 8;
    constexpr int lds = key_block + 8; // dS row stride
    extern __shared__ __align__(16) std::uint16_t smem[];
    std::uint16_t* ks = smem;
    std::uint16_t* vs = ks + key_block * ld;
    std::uint16_t* qs = vs + key_block * ld;
    std::uint16_t* dos = qs + query_block * ld;
    std::uint16_t* dss = dos + query_block * ld;                      // dS as [query][key]
    float* lse_s = reinterpret_cast<float*>(dss + query_block * lds); // base-2 units
    float* delta_s = lse_s + query_block;

    const attention_tile tile = a.key_tiles[blockIdx.x];
    const attention_chunk_desc c = a.chunks[tile.chunk];
    const int head = blockIdx.y;
    const int warp = threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    const int g = lane / 4;
    const int t = lane % 4;

    const std::int64_t j0 = tile.begin;
    const int block_keys =
        static_cast<int>(min(static_cast<std::int64_t>(key_block), c.k_len - j0));
    const auto* kg =
        reinterpret_cast<const std::uint16_t*>(a.k) + (c.k_start + j0) * a.ldk + head * D;
    const auto* vg =
        reinterpret_cast<const std::uint16_t*>(a.v) + (c.k_start + j0) * a.ldv + head * D;
    copy_rows<128>(ks, ld, kg, a.ldk, block_keys, key_block, D);
    copy_rows<128>(vs, ld, vg, a.ldv, block_keys, key_block, D);

    const int kr0 = warp * 16;                // this warp's keys in the tile (S^T rows)
    const std::int64_t key_lo = j0 + kr0 + g; // this thread's two key rows: g and g + 8
    const std::int64_t key_hi = key_lo + 8;
    const float scale_log2 = a.scale * log2e;

    float dk[D / 8][4], dv[D / 8][4];
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt)
#pragma unroll
        for (int e = 0; e < 4; ++e)
            dk[dt][e] = dv[dt][e] = 0.f;

    const std::int64_t first = j0 > c.q_offset ? j0 - c.q_offset : 0;
    for (std::int64_t i0 = first; i0 < c.q_len; i0 += query_block) {
        const int nq = static_cast<int>(min(static_cast<std::int64_t>(query_block), c.q_len - i0));
        const std::int64_t row0 = c.q_start + i0;
        copy_rows<128>(qs, ld,
                       reinterpret_cast<const std::uint16_t*>(a.q) + row0 * a.ldq + head * D, a.ldq,
                       nq, query_block, D);
        copy_rows<128>(dos, ld,
                       reinterpret_cast<const std::uint16_t*>(a.dout) + row0 * a.lddo + head * D,
                       a.lddo, nq, query_block, D);
        for (int r = threadIdx.x; r < query_block; r += 128) {
            const bool valid = r < nq;
            lse_s[r] = valid ? a.lse[(row0 + r) * a.heads + head] * log2e : 0.f;
            delta_s[r] = valid ? a.delta[(row0 + r) * a.heads + head] : 0.f;
        }
        __syncthreads();

        // S^T = K Q^T for this warp's 16 keys and the block's 64 queries.
        float st[query_block / 8][4];
#pragma unroll
        for (int nt = 0; nt < query_block / 8; ++nt)
            st[nt][0] = st[nt][1] = st[nt][2] = st[nt][3] = 0.f;
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk) {
            std::uint32_t ka[4];
            load_a(ka, ks, ld, kr0, kk * 16, g, t);
#pragma unroll
            for (int nt = 0; nt < query_block / 8; ++nt) {
                std::uint32_t b[2];
                load_b_from_rows(b, qs, ld, nt * 8, kk * 16, g, t);
                mma_16816(st[nt], ka, b);
            }
        }
        // P^T under the causal document mask (query rows past the chunk give 0).
#pragma unroll
        for (int nt = 0; nt < query_block / 8; ++nt) {
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int qc = nt * 8 + 2 * t + (e & 1);
                const std::int64_t key = (e & 2) ? key_hi : key_lo;
                const bool visible = qc < nq && key <= c.q_offset + i0 + qc;
                st[nt][e] = visible ? exp2f(st[nt][e] * scale_log2 - lse_s[qc]) : 0.f;
            }
        }
        // dV += P^T dO
#pragma unroll
        for (int kk = 0; kk < query_block / 16; ++kk) {
            std::uint32_t pa[4];
            c_pair_to_a(pa, st[2 * kk], st[2 * kk + 1]);
#pragma unroll
            for (int dt = 0; dt < D / 8; ++dt) {
                std::uint32_t b[2];
                load_b_from_columns(b, dos, ld, kk * 16, dt * 8, g, t);
                mma_16816(dv[dt], pa, b);
            }
        }
        // dP^T = V dO^T, then dS^T = P^T (dP^T - delta), written over P^T.
        {
            float dpt[query_block / 8][4];
#pragma unroll
            for (int nt = 0; nt < query_block / 8; ++nt)
                dpt[nt][0] = dpt[nt][1] = dpt[nt][2] = dpt[nt][3] = 0.f;
#pragma unroll
            for (int kk = 0; kk < D / 16; ++kk) {
                std::uint32_t va[4];
                load_a(va, vs, ld, kr0, kk * 16, g, t);
#pragma unroll
                for (int nt = 0; nt < query_block / 8; ++nt) {
                    std::uint32_t b[2];
                    load_b_from_rows(b, dos, ld, nt * 8, kk * 16, g, t);
                    mma_16816(dpt[nt], va, b);
                }
            }
#pragma unroll
            for (int nt = 0; nt < query_block / 8; ++nt)
#pragma unroll
                for (int e = 0; e < 4; ++e)
                    st[nt][e] *= dpt[nt][e] - delta_s[nt * 8 + 2 * t + (e & 1)];
        }
        // dK += dS^T Q (scaled at the end)
#pragma unroll
        for (int kk = 0; kk < query_block / 16; ++kk) {
            std::uint32_t da[4];
            c_pair_to_a(da, st[2 * kk], st[2 * kk + 1]);
#pragma unroll
            for (int dt = 0; dt < D / 8; ++dt) {
                std::uint32_t b[2];
                load_b_from_columns(b, qs, ld, kk * 16, dt * 8, g, t);
                mma_16816(dk[dt], da, b);
            }
        }
        // dS to shared memory, transposed to [query][key], for dQ.
#pragma unroll
        for (int nt = 0; nt < query_block / 8; ++nt) {
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int qc = nt * 8 + 2 * t + (e & 1);
                const int kc = kr0 + g + 8 * (e >> 1);
                reinterpret_cast<__nv_bfloat16*>(dss)[qc * lds + kc] =
                    __float2bfloat16_rn(st[nt][e]);
            }
        }
        __syncthreads();
        // dQ[16 rows of this warp] += scale * dS K, in two or one halves of 64 columns.
        const int qr0 = warp * 16;
#pragma unroll
        for (int dc = 0; dc < D / 64; ++dc) {
            float acc[8][4];
#pragma unroll
            for (int dt = 0; dt < 8; ++dt)
                acc[dt][0] = acc[dt][1] = acc[dt][2] = acc[dt][3] = 0.f;
#pragma unroll
            for (int kk = 0; kk < key_block / 16; ++kk) {
                std::uint32_t sa[4];
                load_a(sa, dss, lds, qr0, kk * 16, g, t);
#pragma unroll
                for (int dt = 0; dt < 8; ++dt) {
                    std::uint32_t b[2];
                    load_b_from_columns(b, ks, ld, kk * 16, dc * 64 + dt * 8, g, t);
                    mma_16816(acc[dt], sa, b);
                }
            }
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const int r = qr0 + g + 8 * h;
                if (r >= nq)
                    continue;
                float* dst = a.dq_accum + ((row0 + r) * a.heads + head) * D + dc * 64 + 2 * t;
#pragma unroll
                for (int dt = 0; dt < 8; ++dt) {
                    atomicAdd(dst + dt * 8, acc[dt][2 * h] * a.scale);
                    atomicAdd(dst + dt * 8 + 1, acc[dt][2 * h + 1] * a.scale);
                }
            }
        }
        __syncthreads(); // the next query block overwrites qs, dos and dss
    }

#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const int r = kr0 + g + 8 * h;
        if (r >= block_keys)
            continue;
        const std::int64_t row = c.k_start + j0 + r;
        auto* dkr = reinterpret_cast<std::uint16_t*>(a.dk) + row * a.lddk + head * D;
        auto* dvr = reinterpret_cast<std::uint16_t*>(a.dv) + row * a.lddv + head * D;
#pragma unroll
        for (int dt = 0; dt < D / 8; ++dt) {
            *reinterpret_cast<std::uint32_t*>(dkr + dt * 8 + 2 * t) =
                pack_bf16(dk[dt][2 * h] * a.scale, dk[dt][2 * h + 1] * a.scale);
            *reinterpret_cast<std::uint32_t*>(dvr + dt * 8 + 2 * t) =
                pack_bf16(dv[dt][2 * h], dv[dt][2 * h + 1]);
        }
    }
}

template <int D>
cudaError_t launch_bwd_mma(const attention_bwd_args& a, cudaStream_t stream) {
    constexpr int smem = bwd_smem_bytes<D>();
    // Opt in to more than 48 KiB (per device, so on every launch; the call is cheap).
    const cudaError_t opt_in =
        cudaFuncSetAttribute(bwd_mma<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    if (opt_in != cudaSuccess)
        return opt_in;
    const dim3 grid(static_cast<unsigned>(a.key_tile_count), static_cast<unsigned>(a.heads));
    bwd_mma<D><<<grid, 128, smem, stream>>>(a);
    return cudaGetLastError();
}

unsigned blocks_for(std::int64_t threads, int per_block) {
    const std::int64_t blocks = (threads + per_block - 1) / per_block;
    return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > 65535 * 16 ? 65535 * 16 : blocks));
}

} // namespace

int attention_bwd_delta(const attention_bwd_args& a, stream_t stream) {
    if (a.total_q == 0)
        return cudaSuccess;
    bwd_delta<<<blocks_for(a.total_q * a.heads * 32, 256), 256, 0, stream>>>(a);
    return cudaGetLastError();
}

int attention_bwd_mma(const attention_bwd_args& a, stream_t stream) {
    if (a.head_dim != 64 && a.head_dim != 128)
        return cudaErrorInvalidValue;
    const std::int64_t width = static_cast<std::int64_t>(a.heads) * a.head_dim;
    cudaError_t status = cudaMemsetAsync(
        a.dq_accum, 0, static_cast<size_t>(a.total_q * width) * sizeof(float), stream);
    if (status != cudaSuccess)
        return status;
    status = static_cast<cudaError_t>(attention_bwd_delta(a, stream));
    if (status != cudaSuccess || a.key_tile_count == 0)
        return status;
    status = a.head_dim == 64 ? launch_bwd_mma<64>(a, stream) : launch_bwd_mma<128>(a, stream);
    if (status != cudaSuccess || a.total_q == 0)
        return status;
    dq_to_bf16<<<blocks_for(a.total_q * width, 256), 256, 0, stream>>>(a);
    return cudaGetLastError();
}

} // namespace wlb::kernels::cuda_detail
