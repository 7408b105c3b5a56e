// Host side of the CUDA element-wise kernels (kernels/cuda_ops.hpp): argument checks and checked
// launches of kernels/elementwise.cu.
#include "base/error.hpp"
#include "kernels/cuda_ops.hpp"
#include "kernels/elementwise_kernels.hpp"

#include <cuda_runtime_api.h>

namespace wlb::kernels::cuda {

namespace {

void check(int status) {
    WLB_CUDA_CHECK(static_cast<cudaError_t>(status));
}

} // namespace

void rms_norm_forward(const bf16* x, const bf16* weight, index rows, index cols, float eps, bf16* y,
                      float* rstd, stream_t stream) {
    WLB_EXPECTS(rows >= 0 && cols > 0, "rms_norm of {} x {}", rows, cols);
    check(cuda_detail::rms_norm_forward(x, weight, rows, cols, eps, y, rstd, stream));
}

void rms_norm_backward(const bf16* x, const bf16* weight, const float* rstd, const bf16* dy,
                       index rows, index cols, bf16* dx, float* dweight, stream_t stream) {
    WLB_EXPECTS(rows >= 0 && cols > 0, "rms_norm backward of {} x {}", rows, cols);
    check(cuda_detail::rms_norm_backward(x, weight, rstd, dy, rows, cols, dx, dweight, stream));
}

void swiglu_forward(const bf16* gate, const bf16* up, index n, bf16* out, stream_t stream) {
    WLB_EXPECTS(n >= 0, "swiglu of {} values", n);
    check(cuda_detail::swiglu_forward(gate, up, n, out, stream));
}

void swiglu_backward(const bf16* gate, const bf16* up, const bf16* dout, index n, bf16* dgate,
                     bf16* dup, stream_t stream) {
    WLB_EXPECTS(n >= 0, "swiglu backward of {} values", n);
    check(cuda_detail::swiglu_backward(gate, up, dout, n, dgate, dup, stream));
}

void rotary(bf16* x, index rows, index heads, index head_dim, index ld, const index* positions,
            double base, bool inverse, stream_t stream) {
    WLB_EXPECTS(head_dim > 0 && head_dim % 2 == 0, "rotary needs an even head_dim, got {}",
                head_dim);
    WLB_EXPECTS(rows >= 0 && heads > 0 && ld >= heads * head_dim,
                "rotary of {} rows x {} heads x {} with stride {}", rows, heads, head_dim, ld);
    static_assert(sizeof(index) == sizeof(std::int64_t));
    check(cuda_detail::rotary(x, rows, heads, head_dim, ld, positions, base, inverse, stream));
}

void fill_random(bf16* x, index n, std::uint64_t seed, float scale, stream_t stream) {
    WLB_EXPECTS(n >= 0, "fill_random of {} values", n);
    check(cuda_detail::fill_random(x, n, seed, scale, stream));
}

} // namespace wlb::kernels::cuda
