// Varlen causal attention, scalar fp32 variants (no tensor cores): the path for head sizes and
// alignments the MMA kernels do not take, and an independent second implementation on the device.
//
// Variants:
//   fwd_simt   any head_dim <= 256, any row strides; bf16 in and out, fp32 math; one thread per
//              query row (128 per block, the forward tiles), online softmax over the keys it
//              sees, the row's q and output accumulator in local memory.
//   dkdv_simt  the same limits; one thread per key row (64 per block, the backward tiles), looping
//              over the queries that see the key, recomputing P from the saved lse.
//   dq_simt    the same limits; one thread per query row (the forward tiles), looping over the
//              keys it sees. Needs delta from bwd_delta (kernels/attention_bwd.cu).
// Every thread of a warp reads the same key (forward, dQ) at the same step, so key loads are
// broadcasts; speed is not the point of these kernels.
#include "kernels/attention_kernels.hpp"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace wlb::kernels::cuda_detail {

namespace {

constexpr int max_d = simt_max_head_dim;

__device__ __forceinline__ float ld_bf16(const bf16* base, std::int64_t i) {
    return __bfloat162float(reinterpret_cast<const __nv_bfloat16*>(base)[i]);
}
__device__ __forceinline__ void st_bf16(bf16* base, std::int64_t i, float x) {
    reinterpret_cast<__nv_bfloat16*>(base)[i] = __float2bfloat16_rn(x);
}

__global__ void __launch_bounds__(128) fwd_simt(const attention_fwd_args a) {
    const attention_tile tile = a.tiles[blockIdx.x];
    const attention_chunk_desc c = a.chunks[tile.chunk];
    const int head = blockIdx.y;
    const std::int64_t i = tile.begin + threadIdx.x;
    if (i >= c.q_len)
        return;
    const int d = a.head_dim;
    const std::int64_t row = c.q_start + i;
    const std::int64_t col = static_cast<std::int64_t>(head) * d;
    float q[max_d], o[max_d];
    for (int x = 0; x < d; ++x) {
        q[x] = ld_bf16(a.q, row * a.ldq + col + x) * a.scale;
        o[x] = 0.f;
    }
    float m = -INFINITY, l = 0.f;
    const std::int64_t last = c.q_offset + i; // sees keys 0 .. last
    for (std::int64_t j = 0; j <= last; ++j) {
        const std::int64_t krow = c.k_start + j;
        float s = 0.f;
        for (int x = 0; x < d; ++x)
            s += q[x] * ld_bf16(a.k, krow * a.ldk + col + x);
        const float mn = fmaxf(m, s);
        const float alpha = __expf(m - mn);
        const float p = __expf(s - mn);
        l = l * alpha + p;
        for (int x = 0; x < d; ++x)
            o[x] = o[x] * alpha + p * ld_bf16(a.v, krow * a.ldv + col + x);
        m = mn;
    }
    const float inv = 1.f / l;
    for (int x = 0; x < d; ++x)
        st_bf16(a.out, row * a.ldo + col + x, o[x] * inv);
    a.lse[row * a.heads + head] = m + logf(l);
}

__global__ void __launch_bounds__(64) dkdv_simt(const attention_bwd_args a) {
    const attention_tile tile = a.key_tiles[blockIdx.x];
    const attention_chunk_desc c = a.chunks[tile.chunk];
    const int head = blockIdx.y;
    const std::int64_t j = tile.begin + threadIdx.x;
    if (j >= c.k_len)
        return;
    const int d = a.head_dim;
    const std::int64_t col = static_cast<std::int64_t>(head) * d;
    const std::int64_t krow = c.k_start + j;
    float k[max_d], v[max_d], dk[max_d], dv[max_d];
    for (int x = 0; x < d; ++x) {
        k[x] = ld_bf16(a.k, krow * a.ldk + col + x);
        v[x] = ld_bf16(a.v, krow * a.ldv + col + x);
        dk[x] = dv[x] = 0.f;
    }
    for (std::int64_t i = j > c.q_offset ? j - c.q_offset : 0; i < c.q_len; ++i) {
        const std::int64_t row = c.q_start + i;
        float s = 0.f, dp = 0.f;
        for (int x = 0; x < d; ++x) {
            s += ld_bf16(a.q, row * a.ldq + col + x) * k[x];
            dp += ld_bf16(a.dout, row * a.lddo + col + x) * v[x];
        }
        const float p = __expf(s * a.scale - a.lse[row * a.heads + head]);
        const float ds = p * (dp - a.delta[row * a.heads + head]);
        for (int x = 0; x < d; ++x) {
            dv[x] += p * ld_bf16(a.dout, row * a.lddo + col + x);
            dk[x] += ds * ld_bf16(a.q, row * a.ldq + col + x);
        }
    }
    for (int x = 0; x < d; ++x) {
        st_bf16(a.dk, krow * a.lddk + col + x, dk[x] * a.scale);
        st_bf16(a.dv, krow * a.lddv + col + x, dv[x]);
    }
}

__global__ void __launch_bounds__(128) dq_simt(const attention_bwd_args a) {
    const attention_tile tile = a.query_tiles[blockIdx.x];
    const attention_chunk_desc c = a.chunks[tile.chunk];
    const int head = blockIdx.y;
    const std::int64_t i = tile.begin + threadIdx.x;
    if (i >= c.q_len)
        return;
    const int d = a.head_dim;
    const std::int64_t col = static_cast<std::int64_t>(head) * d;
    const std::int64_t row = c.q_start + i;
    float q[max_d], dout[max_d], dq[max_d];
    for (int x = 0; x < d; ++x) {
        q[x] = ld_bf16(a.q, row * a.ldq + col + x);
        dout[x] = ld_bf16(a.dout, row * a.lddo + col + x);
        dq[x] = 0.f;
    }
    const float lse = a.lse[row * a.heads + head];
    const float delta = a.delta[row * a.heads + head];
    const std::int64_t last = c.q_offset + i;
    for (std::int64_t j = 0; j <= last; ++j) {
        const std::int64_t krow = c.k_start + j;
        float s = 0.f, dp = 0.f;
        for (int x = 0; x < d; ++x) {
            s += q[x] * ld_bf16(a.k, krow * a.ldk + col + x);
            dp += dout[x] * ld_bf16(a.v, krow * a.ldv + col + x);
        }
        const float ds = __expf(s * a.scale - lse) * (dp - delta);
        for (int x = 0; x < d; ++x)
            dq[x] += ds * ld_bf16(a.k, krow * a.ldk + col + x);
    }
    for (int x = 0; x < d; ++x)
        st_bf16(a.dq, row * a.lddq + col + x, dq[x] * a.scale);
}

} // namespace

int attention_fwd_simt(const attention_fwd_args& a, stream_t stream) {
    if (a.head_dim < 1 || a.head_dim > max_d)
        return cudaErrorInvalidValue;
    if (a.tile_count == 0)
        return cudaSuccess;
    fwd_simt<<<dim3(static_cast<unsigned>(a.tile_count), static_cast<unsigned>(a.heads)), 128, 0,
               stream>>>(a);
    return cudaGetLastError();
}

int attention_bwd_simt(const attention_bwd_args& a, stream_t stream) {
    if (a.head_dim < 1 || a.head_dim > max_d)
        return cudaErrorInvalidValue;
    cudaError_t status = static_cast<cudaError_t>(attention_bwd_delta(a, stream));
    if (status != cudaSuccess)
        return status;
    if (a.key_tile_count > 0) {
        dkdv_simt<<<dim3(static_cast<unsigned>(a.key_tile_count), static_cast<unsigned>(a.heads)),
                    64, 0, stream>>>(a);
        status = cudaGetLastError();
        if (status != cudaSuccess)
            return status;
    }
    if (a.query_tile_count > 0) {
        dq_simt<<<dim3(static_cast<unsigned>(a.query_tile_count), static_cast<unsigned>(a.heads)),
                  128, 0, stream>>>(a);
        status = cudaGetLastError();
    }
    return status;
}

} // namespace wlb::kernels::cuda_detail
