// Element-wise and row-wise kernels of a decoder layer on the device: bf16 in and out, fp32 math
// (double for rotary angles), the same contracts as the CPU versions in kernels/ops.hpp.
//
// Variants (each one kernel, no templates):
//   rms_norm_fwd      one block of 256 threads per row; any cols; saves rstd (fp32).
//   rms_norm_bwd_dx   one block per row; dx overwritten.
//   rms_norm_bwd_dw   dweight (fp32) accumulated: a thread per column over a slab of rows, one
//                     atomic add per column and slab.
//   swiglu_fwd/bwd    one thread per element (grid-stride).
//   rotary            GPT-NeoX half-split rotation in place, one thread per (row, pair index);
//                     angles in double so positions up to millions keep bf16 accuracy.
//   fill_uniform      benchmark and emulation inputs: a hash of (seed, index) mapped to
//                     [-scale, scale), one thread per element (grid-stride).
// All need only sm_52 or later (atomicAdd on float); the build compiles for sm_90.
#include "kernels/elementwise_kernels.hpp"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace wlb::kernels::cuda_detail {

namespace {

__device__ __forceinline__ float f(const bf16* p, std::int64_t i) {
    return __bfloat162float(reinterpret_cast<const __nv_bfloat16*>(p)[i]);
}
__device__ __forceinline__ void put(bf16* p, std::int64_t i, float x) {
    reinterpret_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(x);
}

/// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the sum.
__device__ float block_sum(float x) {
    __shared__ float partial[32];
#pragma unroll
    for (int off = 16; off > 0; off /= 2)
        x += __shfl_xor_sync(0xffffffffu, x, off);
    const int warp = threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    __syncthreads(); // partial may still be read by a previous call
    if (lane == 0)
        partial[warp] = x;
    __syncthreads();
    const int warps = blockDim.x / 32;
    float total = lane < warps ? partial[lane] : 0.f;
#pragma unroll
    for (int off = 16; off > 0; off /= 2)
        total += __shfl_xor_sync(0xffffffffu, total, off);
    return total;
}

__global__ void rms_norm_fwd(const bf16* x, const bf16* w, std::int64_t cols, float eps, bf16* y,
                             float* rstd) {
    const std::int64_t base = static_cast<std::int64_t>(blockIdx.x) * cols;
    float ss = 0.f;
    for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
        const float v = f(x, base + c);
        ss += v * v;
    }
    const float s = rsqrtf(block_sum(ss) / static_cast<float>(cols) + eps);
    if (threadIdx.x == 0)
        rstd[blockIdx.x] = s;
    for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x)
        put(y, base + c, f(x, base + c) * s * f(w, c));
}

__global__ void rms_norm_bwd_dx(const bf16* x, const bf16* w, const float* rstd, const bf16* dy,
                                std::int64_t cols, bf16* dx) {
    const std::int64_t base = static_cast<std::int64_t>(blockIdx.x) * cols;
    const float s = rstd[blockIdx.x];
    float dot = 0.f;
    for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x)
        dot += f(w, c) * f(dy, base + c) * f(x, base + c);
    const float k = block_sum(dot) * s * s * s / static_cast<float>(cols);
    for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x)
        put(dx, base + c, s * f(w, c) * f(dy, base + c) - f(x, base + c) * k);
}

__global__ void rms_norm_bwd_dw(const bf16* x, const float* rstd, const bf16* dy, std::int64_t rows,
                                std::int64_t cols, std::int64_t slab, float* dw) {
    const std::int64_t c = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (c >= cols)
        return;
    const std::int64_t r0 = static_cast<std::int64_t>(blockIdx.y) * slab;
    const std::int64_t r1 = r0 + slab < rows ? r0 + slab : rows;
    float sum = 0.f;
    for (std::int64_t r = r0; r < r1; ++r)
        sum += f(dy, r * cols + c) * f(x, r * cols + c) * rstd[r];
    atomicAdd(dw + c, sum);
}

__global__ void swiglu_fwd(const bf16* gate, const bf16* up, std::int64_t n, bf16* out) {
    for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
         i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
        const float g = f(gate, i);
        put(out, i, g / (1.f + __expf(-g)) * f(up, i));
    }
}

__global__ void swiglu_bwd(const bf16* gate, const bf16* up, const bf16* dout, std::int64_t n,
                           bf16* dgate, bf16* dup) {
    for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
         i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
        const float g = f(gate, i);
        const float sig = 1.f / (1.f + __expf(-g));
        const float d = f(dout, i);
        put(dup, i, d * g * sig);
        put(dgate, i, d * f(up, i) * (sig * (1.f + g * (1.f - sig))));
    }
}

__global__ void rotary_kernel(bf16* x, std::int64_t rows, int heads, int head_dim, std::int64_t ld,
                              const std::int64_t* positions, double base, bool inverse) {
    const int half = head_dim / 2;
    const std::int64_t n = rows * half;
    for (std::int64_t idx = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
         idx < n; idx += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
        const std::int64_t r = idx / half;
        const int i = static_cast<int>(idx - r * half);
        const double theta =
            static_cast<double>(positions[r]) * pow(base, -2.0 * static_cast<double>(i) / head_dim);
        double sd = 0, cd = 0;
        sincos(theta, &sd, &cd);
        const float c = static_cast<float>(cd);
        const float s = static_cast<float>(inverse ? -sd : sd);
        for (int h = 0; h < heads; ++h) {
            const std::int64_t at = r * ld + static_cast<std::int64_t>(h) * head_dim + i;
            const float a = f(x, at);
            const float b = f(x, at + half);
            put(x, at, a * c - b * s);
            put(x, at + half, a * s + b * c);
        }
    }
}

__global__ void fill_uniform(bf16* x, std::int64_t n, std::uint64_t seed, float scale) {
    for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
         i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
        // splitmix64 of (seed, i): independent uniform bits per element and seed.
        std::uint64_t z = seed + 0x9e3779b97f4a7c15ull * static_cast<std::uint64_t>(i + 1);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        const float u = static_cast<float>(z >> 40) * (1.0f / 16777216.0f); // [0, 1)
        put(x, i, (2.f * u - 1.f) * scale);
    }
}

unsigned grid_for(std::int64_t n, int threads) {
    const std::int64_t blocks = (n + threads - 1) / threads;
    return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > 65535 * 8 ? 65535 * 8 : blocks));
}

} // namespace

int rms_norm_forward(const bf16* x, const bf16* weight, std::int64_t rows, std::int64_t cols,
                     float eps, bf16* y, float* rstd, stream_t stream) {
    if (rows == 0)
        return cudaSuccess;
    rms_norm_fwd<<<static_cast<unsigned>(rows), 256, 0, stream>>>(x, weight, cols, eps, y, rstd);
    return cudaGetLastError();
}

int rms_norm_backward(const bf16* x, const bf16* weight, const float* rstd, const bf16* dy,
                      std::int64_t rows, std::int64_t cols, bf16* dx, float* dweight,
                      stream_t stream) {
    if (rows == 0)
        return cudaSuccess;
    rms_norm_bwd_dx<<<static_cast<unsigned>(rows), 256, 0, stream>>>(x, weight, rstd, dy, cols, dx);
    cudaError_t status = cudaGetLastError();
    if (status != cudaSuccess)
        return status;
    const std::int64_t slabs = rows < 64 ? rows : 64;
    const std::int64_t slab = (rows + slabs - 1) / slabs;
    const dim3 grid(static_cast<unsigned>((cols + 255) / 256), static_cast<unsigned>(slabs));
    rms_norm_bwd_dw<<<grid, 256, 0, stream>>>(x, rstd, dy, rows, cols, slab, dweight);
    return cudaGetLastError();
}

int swiglu_forward(const bf16* gate, const bf16* up, std::int64_t n, bf16* out, stream_t stream) {
    if (n == 0)
        return cudaSuccess;
    swiglu_fwd<<<grid_for(n, 256), 256, 0, stream>>>(gate, up, n, out);
    return cudaGetLastError();
}

int swiglu_backward(const bf16* gate, const bf16* up, const bf16* dout, std::int64_t n, bf16* dgate,
                    bf16* dup, stream_t stream) {
    if (n == 0)
        return cudaSuccess;
    swiglu_bwd<<<grid_for(n, 256), 256, 0, stream>>>(gate, up, dout, n, dgate, dup);
    return cudaGetLastError();
}

int rotary(bf16* x, std::int64_t rows, std::int64_t heads, std::int64_t head_dim, std::int64_t ld,
           const std::int64_t* positions, double base, bool inverse, stream_t stream) {
    if (rows == 0)
        return cudaSuccess;
    rotary_kernel<<<grid_for(rows * (head_dim / 2), 256), 256, 0, stream>>>(
        x, rows, static_cast<int>(heads), static_cast<int>(head_dim), ld, positions, base, inverse);
    return cudaGetLastError();
}

int fill_random(bf16* x, std::int64_t n, std::uint64_t seed, float scale, stream_t stream) {
    if (n == 0)
        return cudaSuccess;
    fill_uniform<<<grid_for(n, 256), 256, 0, stream>>>(x, n, seed, scale);
    return cudaGetLastError();
}

} // namespace wlb::kernels::cuda_detail
