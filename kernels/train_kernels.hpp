// Internal seam between kernels/cuda/train_cuda.cpp and kernels/train_kernels.cu: launch
// functions of the training step's small kernels on device pointers, returning the launch's
// cudaError_t as an int. No CUDA header, C++17. Callers outside kernels/ use kernels/cuda_ops.hpp.
#pragma once

#include "kernels/bf16.hpp"

#include <cstdint>

struct CUstream_st;

namespace wlb::kernels::cuda_detail {

using stream_t = CUstream_st*;

int embedding_forward(const bf16* table, const std::int32_t* ids, std::int64_t rows,
                      std::int64_t cols, bf16* out, stream_t stream);
int embedding_backward(const bf16* dout, const std::int32_t* ids, std::int64_t rows,
                       std::int64_t cols, float* dtable, stream_t stream);
int cross_entropy(const bf16* logits, const std::int32_t* labels, std::int64_t rows,
                  std::int64_t vocab, float grad_scale, bf16* dlogits, double* loss,
                  stream_t stream);
int add(const bf16* a, const bf16* b, std::int64_t n, bf16* out, stream_t stream);
int accumulate_bf16(float* acc, const bf16* x, std::int64_t n, stream_t stream);
int accumulate_f32(float* acc, const float* x, std::int64_t n, stream_t stream);
int f32_to_bf16(const float* src, std::int64_t n, bf16* dst, stream_t stream);
int bf16_to_f32(const bf16* src, std::int64_t n, float* dst, stream_t stream);
int sgd(float* param, const float* grad, std::int64_t n, float learning_rate, stream_t stream);
int fill_uniform_f32(float* x, std::int64_t n, std::uint64_t seed, float low, float high,
                     stream_t stream);
int gather_rows(bf16* dst, std::int64_t rows, std::int64_t width, const std::int64_t* offsets,
                const std::int64_t* sources, const bf16* src, stream_t stream);
int expand_heads(bf16* dst, std::int64_t ld_dst, const bf16* src, std::int64_t ld_src,
                 std::int64_t rows, std::int64_t kv_heads, std::int64_t group,
                 std::int64_t head_dim, stream_t stream);
int reduce_heads(bf16* dst, std::int64_t ld_dst, const bf16* src, std::int64_t ld_src,
                 std::int64_t rows, std::int64_t kv_heads, std::int64_t group,
                 std::int64_t head_dim, stream_t stream);

} // namespace wlb::kernels::cuda_detail
