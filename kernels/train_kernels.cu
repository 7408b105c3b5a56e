// The training step's small kernels (issue [cuda-run]): bf16 storage, fp32 math, the contracts of
// runtime/device/compute_device.hpp and of the CPU kernels in kernels/ops.hpp.
//
// Variants (each one kernel, no templates but the accumulate source type):
//   embedding_fwd      one thread per output element (grid-stride): out[r] = table[ids[r]].
//   embedding_bwd      one thread per element: dtable[ids[r]] += dout[r], fp32 atomics.
//   cross_entropy_row  one block of 256 threads per row: max, sum of exp, dlogits =
//                      scale * (softmax - onehot) in bf16, the row's loss added to a double with
//                      one atomic (sm_60+); rows labelled < 0 get zero gradients and no loss.
//   add_bf16           out = a + b in fp32, rounded once (out may alias a or b).
//   accumulate         acc (fp32) += x (bf16 or fp32).
//   convert            fp32 <-> bf16 (round to nearest even).
//   sgd                p -= lr * g (fp32).
//   fill_uniform_f32   a hash of (seed, index) mapped to [low, high).
//   gather_rows_sum    one block per destination row: the fp32 sum of its source rows (CSR
//                      offsets and sources, int64), zero when it has none.
//   expand_heads       one thread per destination element: query head h reads K/V head h / group.
//   reduce_heads       one thread per destination element: the fp32 sum of the group's heads.
// All need only sm_60 or later (double atomicAdd); the build compiles for sm_90.
#include "kernels/train_kernels.hpp"

#include <cmath>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace wlb::kernels::cuda_detail {

namespace {

__device__ __forceinline__ float f(const bf16* p, std::int64_t i) {
    return __bfloat162float(reinterpret_cast<const __nv_bfloat16*>(p)[i]);
}
__device__ __forceinline__ float f(const float* p, std::int64_t i) {
    return p[i];
}
__device__ __forceinline__ void put(bf16* p, std::int64_t i, float x) {
    reinterpret_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(x);
}

constexpr int threads = 256;

unsigned grid_for(std::int64_t n) {
    const std::int64_t blocks = (n + threads - 1) / threads;
    return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > 65535 * 8 ? 65535 * 8 : blocks));
}

__device__ __forceinline__ std::int64_t first_index() {
    return static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ std::int64_t grid_stride() {
    return static_cast<std::int64_t>(gridDim.x) * blockDim.x;
}

/// Reduction over the block (blockDim.x == threads); every thread gets the result.
template <bool Max>
__device__ float block_reduce(float x) {
    __shared__ float partial[threads / 32];
#pragma unroll
    for (int off = 16; off > 0; off /= 2) {
        const float y = __shfl_xor_sync(0xffffffffu, x, off);
        x = Max ? fmaxf(x, y) : x + y;
    }
    const int warp = threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    __syncthreads(); // partial may still be read by a previous call
    if (lane == 0)
        partial[warp] = x;
    __syncthreads();
    float total = lane < threads / 32 ? partial[lane] : (Max ? -INFINITY : 0.f);
#pragma unroll
    for (int off = 16; off > 0; off /= 2) {
        const float y = __shfl_xor_sync(0xffffffffu, total, off);
        total = Max ? fmaxf(total, y) : total + y;
    }
    return total;
}

__global__ void embedding_fwd(const bf16* table, const std::int32_t* ids, std::int64_t rows,
                              std::int64_t cols, bf16* out) {
    const auto* t = reinterpret_cast<const __nv_bfloat16*>(table);
    auto* o = reinterpret_cast<__nv_bfloat16*>(out);
    for (std::int64_t i = first_index(); i < rows * cols; i += grid_stride()) {
        const std::int64_t r = i / cols;
        o[i] = t[static_cast<std::int64_t>(ids[r]) * cols + (i - r * cols)];
    }
}

__global__ void embedding_bwd(const bf16* dout, const std::int32_t* ids, std::int64_t rows,
                              std::int64_t cols, float* dtable) {
    for (std::int64_t i = first_index(); i < rows * cols; i += grid_stride()) {
        const std::int64_t r = i / cols;
        atomicAdd(dtable + static_cast<std::int64_t>(ids[r]) * cols + (i - r * cols), f(dout, i));
    }
}

__global__ void cross_entropy_row(const bf16* logits, const std::int32_t* labels,
                                  std::int64_t vocab, float scale, bf16* dlogits, double* loss) {
    const std::int64_t base = static_cast<std::int64_t>(blockIdx.x) * vocab;
    const std::int32_t label = labels[blockIdx.x];
    if (label < 0) {
        for (std::int64_t c = threadIdx.x; c < vocab; c += blockDim.x)
            put(dlogits, base + c, 0.f);
        return;
    }
    float mx = -INFINITY;
    for (std::int64_t c = threadIdx.x; c < vocab; c += blockDim.x)
        mx = fmaxf(mx, f(logits, base + c));
    mx = block_reduce<true>(mx);
    float sum = 0.f;
    for (std::int64_t c = threadIdx.x; c < vocab; c += blockDim.x)
        sum += __expf(f(logits, base + c) - mx);
    sum = block_reduce<false>(sum);
    const float lse = mx + __logf(sum);
    for (std::int64_t c = threadIdx.x; c < vocab; c += blockDim.x) {
        const float p = __expf(f(logits, base + c) - lse);
        put(dlogits, base + c, scale * (c == label ? p - 1.f : p));
    }
    if (threadIdx.x == 0)
        atomicAdd(loss, static_cast<double>(lse - f(logits, base + label)));
}

__global__ void add_bf16(const bf16* a, const bf16* b, std::int64_t n, bf16* out) {
    for (std::int64_t i = first_index(); i < n; i += grid_stride())
        put(out, i, f(a, i) + f(b, i));
}

template <typename T>
__global__ void accumulate_kernel(float* acc, const T* x, std::int64_t n) {
    for (std::int64_t i = first_index(); i < n; i += grid_stride())
        acc[i] += f(x, i);
}

__global__ void f32_to_bf16_kernel(const float* src, std::int64_t n, bf16* dst) {
    for (std::int64_t i = first_index(); i < n; i += grid_stride())
        put(dst, i, src[i]);
}

__global__ void bf16_to_f32_kernel(const bf16* src, std::int64_t n, float* dst) {
    for (std::int64_t i = first_index(); i < n; i += grid_stride())
        dst[i] = f(src, i);
}

__global__ void sgd_kernel(float* p, const float* g, std::int64_t n, float lr) {
    for (std::int64_t i = first_index(); i < n; i += grid_stride())
        p[i] -= lr * g[i];
}

__global__ void fill_uniform_f32_kernel(float* x, std::int64_t n, std::uint64_t seed, float low,
                                        float high) {
    for (std::int64_t i = first_index(); i < n; i += grid_stride()) {
        // splitmix64 of (seed, i), as kernels/elementwise.cu's fill_uniform.
        std::uint64_t z = seed + 0x9e3779b97f4a7c15ull * static_cast<std::uint64_t>(i + 1);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        const float u = static_cast<float>(z >> 40) * (1.0f / 16777216.0f); // [0, 1)
        x[i] = low + (high - low) * u;
    }
}

__global__ void gather_rows_sum(bf16* dst, std::int64_t width, const std::int64_t* offsets,
                                const std::int64_t* sources, const bf16* src) {
    const std::int64_t row = blockIdx.x;
    const std::int64_t begin = offsets[row];
    const std::int64_t end = offsets[row + 1];
    for (std::int64_t c = threadIdx.x; c < width; c += blockDim.x) {
        float sum = 0.f;
        for (std::int64_t s = begin; s < end; ++s)
            sum += f(src, sources[s] * width + c);
        put(dst, row * width + c, sum);
    }
}

__global__ void expand_heads_kernel(bf16* dst, std::int64_t ld_dst, const bf16* src,
                                    std::int64_t ld_src, std::int64_t rows, std::int64_t heads,
                                    std::int64_t group, std::int64_t head_dim) {
    const auto* s = reinterpret_cast<const __nv_bfloat16*>(src);
    auto* d = reinterpret_cast<__nv_bfloat16*>(dst);
    const std::int64_t width = heads * head_dim; // query heads
    for (std::int64_t i = first_index(); i < rows * width; i += grid_stride()) {
        const std::int64_t r = i / width;
        const std::int64_t within = i - r * width;
        const std::int64_t h = within / head_dim;
        const std::int64_t e = within - h * head_dim;
        d[r * ld_dst + within] = s[r * ld_src + (h / group) * head_dim + e];
    }
}

__global__ void reduce_heads_kernel(bf16* dst, std::int64_t ld_dst, const bf16* src,
                                    std::int64_t ld_src, std::int64_t rows, std::int64_t kv_heads,
                                    std::int64_t group, std::int64_t head_dim) {
    const std::int64_t width = kv_heads * head_dim;
    for (std::int64_t i = first_index(); i < rows * width; i += grid_stride()) {
        const std::int64_t r = i / width;
        const std::int64_t within = i - r * width;
        const std::int64_t g = within / head_dim;
        const std::int64_t e = within - g * head_dim;
        float sum = 0.f;
        for (std::int64_t j = 0; j < group; ++j)
            sum += f(src, r * ld_src + (g * group + j) * head_dim + e);
        put(dst, r * ld_dst + within, sum);
    }
}

} // namespace

int embedding_forward(const bf16* table, const std::int32_t* ids, std::int64_t rows,
                      std::int64_t cols, bf16* out, stream_t stream) {
    if (rows * cols == 0)
        return cudaSuccess;
    embedding_fwd<<<grid_for(rows * cols), threads, 0, stream>>>(table, ids, rows, cols, out);
    return cudaGetLastError();
}

int embedding_backward(const bf16* dout, const std::int32_t* ids, std::int64_t rows,
                       std::int64_t cols, float* dtable, stream_t stream) {
    if (rows * cols == 0)
        return cudaSuccess;
    embedding_bwd<<<grid_for(rows * cols), threads, 0, stream>>>(dout, ids, rows, cols, dtable);
    return cudaGetLastError();
}

int cross_entropy(const bf16* logits, const std::int32_t* labels, std::int64_t rows,
                  std::int64_t vocab, float grad_scale, bf16* dlogits, double* loss,
                  stream_t stream) {
    if (rows == 0)
        return cudaSuccess;
    cross_entropy_row<<<static_cast<unsigned>(rows), threads, 0, stream>>>(
        logits, labels, vocab, grad_scale, dlogits, loss);
    return cudaGetLastError();
}

int add(const bf16* a, const bf16* b, std::int64_t n, bf16* out, stream_t stream) {
    if (n == 0)
        return cudaSuccess;
    add_bf16<<<grid_for(n), threads, 0, stream>>>(a, b, n, out);
    return cudaGetLastError();
}

int accumulate_bf16(float* acc, const bf16* x, std::int64_t n, stream_t stream) {
    if (n == 0)
        return cudaSuccess;
    accumulate_kernel<bf16><<<grid_for(n), threads, 0, stream>>>(acc, x, n);
    return cudaGetLastError();
}

int accumulate_f32(float* acc, const float* x, std::int64_t n, stream_t stream) {
    if (n == 0)
        return cudaSuccess;
    accumulate_kernel<float><<<grid_for(n), threads, 0, stream>>>(acc, x, n);
    return cudaGetLastError();
}

int f32_to_bf16(const float* src, std::int64_t n, bf16* dst, stream_t stream) {
    if (n == 0)
        return cudaSuccess;
    f32_to_bf16_kernel<<<grid_for(n), threads, 0, stream>>>(src, n, dst);
    return cudaGetLastError();
}

int bf16_to_f32(const bf16* src, std::int64_t n, float* dst, stream_t stream) {
    if (n == 0)
        return cudaSuccess;
    bf16_to_f32_kernel<<<grid_for(n), threads, 0, stream>>>(src, n, dst);
    return cudaGetLastError();
}

int sgd(float* param, const float* grad, std::int64_t n, float learning_rate, stream_t stream) {
    if (n == 0)
        return cudaSuccess;
    sgd_kernel<<<grid_for(n), threads, 0, stream>>>(param, grad, n, learning_rate);
    return cudaGetLastError();
}

int fill_uniform_f32(float* x, std::int64_t n, std::uint64_t seed, float low, float high,
                     stream_t stream) {
    if (n == 0)
        return cudaSuccess;
    fill_uniform_f32_kernel<<<grid_for(n), threads, 0, stream>>>(x, n, seed, low, high);
    return cudaGetLastError();
}

int gather_rows(bf16* dst, std::int64_t rows, std::int64_t width, const std::int64_t* offsets,
                const std::int64_t* sources, const bf16* src, stream_t stream) {
    if (rows == 0 || width == 0)
        return cudaSuccess;
    if (rows > 0x7fffffffLL)
        return cudaErrorInvalidValue;
    gather_rows_sum<<<static_cast<unsigned>(rows), threads, 0, stream>>>(dst, width, offsets,
                                                                         sources, src);
    return cudaGetLastError();
}

int expand_heads(bf16* dst, std::int64_t ld_dst, const bf16* src, std::int64_t ld_src,
                 std::int64_t rows, std::int64_t kv_heads, std::int64_t group,
                 std::int64_t head_dim, stream_t stream) {
    const std::int64_t n = rows * kv_heads * group * head_dim;
    if (n == 0)
        return cudaSuccess;
    expand_heads_kernel<<<grid_for(n), threads, 0, stream>>>(dst, ld_dst, src, ld_src, rows,
                                                             kv_heads * group, group, head_dim);
    return cudaGetLastError();
}

int reduce_heads(bf16* dst, std::int64_t ld_dst, const bf16* src, std::int64_t ld_src,
                 std::int64_t rows, std::int64_t kv_heads, std::int64_t group,
                 std::int64_t head_dim, stream_t stream) {
    const std::int64_t n = rows * kv_heads * head_dim;
    if (n == 0)
        return cudaSuccess;
    reduce_heads_kernel<<<grid_for(n), threads, 0, stream>>>(dst, ld_dst, src, ld_src, rows,
                                                             kv_heads, group, head_dim);
    return cudaGetLastError();
}

} // namespace wlb::kernels::cuda_detail
