// Internal seam between kernels/cuda/elementwise_cuda.cpp and kernels/elementwise.cu: launch
// functions on device pointers that return the launch's cudaError_t as an int. No CUDA header,
// C++17. Callers outside kernels/ use kernels/cuda_ops.hpp.
#pragma once

#include "kernels/bf16.hpp"

#include <cstdint>

struct CUstream_st;

namespace wlb::kernels::cuda_detail {

using stream_t = CUstream_st*;

int rms_norm_forward(const bf16* x, const bf16* weight, std::int64_t rows, std::int64_t cols,
                     float eps, bf16* y, float* rstd, stream_t stream);
int rms_norm_backward(const bf16* x, const bf16* weight, const float* rstd, const bf16* dy,
                      std::int64_t rows, std::int64_t cols, bf16* dx, float* dweight,
                      stream_t stream);
int swiglu_forward(const bf16* gate, const bf16* up, std::int64_t n, bf16* out, stream_t stream);
int swiglu_backward(const bf16* gate, const bf16* up, const bf16* dout, std::int64_t n, bf16* dgate,
                    bf16* dup, stream_t stream);
int rotary(bf16* x, std::int64_t rows, std::int64_t heads, std::int64_t head_dim, std::int64_t ld,
           const std::int64_t* positions, double base, bool inverse, stream_t stream);
int fill_random(bf16* x, std::int64_t n, std::uint64_t seed, float scale, stream_t stream);

} // namespace wlb::kernels::cuda_detail
