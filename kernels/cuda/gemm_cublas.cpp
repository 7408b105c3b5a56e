// GEMM through cuBLAS (kernels/cuda_ops.hpp). Row-major C = op(A) op(B) is column-major
// C^T = op(B)^T op(A)^T, so each call hands cuBLAS B before A with the dimensions swapped; a
// row-major matrix read column-major is its transpose, so each operand keeps its own transpose
// flag.
#include "base/error.hpp"
#include "kernels/cuda_ops.hpp"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#define WLB_CUBLAS_CHECK(call)                                                                     \
    do {                                                                                           \
        const cublasStatus_t wlb_status_ = (call);                                                 \
        if (wlb_status_ != CUBLAS_STATUS_SUCCESS) [[unlikely]]                                     \
            ::wlb::detail::api_failure("cuBLAS", static_cast<long long>(wlb_status_),              \
                                       cublasGetStatusString(wlb_status_), #call, __FILE__,        \
                                       __LINE__);                                                  \
    } while (0)

namespace wlb::kernels::cuda {

struct blas_handle::impl {
    cublasHandle_t handle = nullptr;
};

blas_handle::blas_handle() : m_impl(std::make_unique<impl>()) {
    WLB_CUBLAS_CHECK(cublasCreate(&m_impl->handle));
}

blas_handle::~blas_handle() {
    if (m_impl->handle != nullptr)
        cublasDestroy(m_impl->handle);
}

namespace {

void check_shape(bool ta, bool tb, index m, index n, index k, index lda, index ldb, index ldc) {
    WLB_EXPECTS(m >= 0 && n >= 0 && k >= 0, "gemm of {} x {} x {}", m, n, k);
    WLB_EXPECTS(lda >= (ta ? m : k) && ldb >= (tb ? k : n) && ldc >= n,
                "gemm strides lda {} ldb {} ldc {} too small for {} x {} x {}", lda, ldb, ldc, m, n,
                k);
    constexpr index limit = index{1} << 31;
    WLB_EXPECTS(m < limit && n < limit && k < limit && lda < limit && ldb < limit && ldc < limit,
                "gemm dimensions exceed cuBLAS int");
}

void gemm_ex(blas_handle& blas, bool ta, bool tb, index m, index n, index k, float alpha,
             const void* a, index lda, const void* b, index ldb, float beta, void* c, index ldc,
             cudaDataType_t type, stream_t stream, cudaDataType_t c_type) {
    check_shape(ta, tb, m, n, k, lda, ldb, ldc);
    if (m == 0 || n == 0)
        return;
    cublasHandle_t h = blas.internals().handle;
    WLB_CUBLAS_CHECK(cublasSetStream(h, stream));
    WLB_CUBLAS_CHECK(cublasGemmEx(h, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
                                  static_cast<int>(n), static_cast<int>(m), static_cast<int>(k),
                                  &alpha, b, type, static_cast<int>(ldb), a, type,
                                  static_cast<int>(lda), &beta, c, c_type, static_cast<int>(ldc),
                                  CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

} // namespace

void gemm(blas_handle& blas, bool ta, bool tb, index m, index n, index k, float alpha,
          const bf16* a, index lda, const bf16* b, index ldb, float beta, bf16* c, index ldc,
          stream_t stream) {
    gemm_ex(blas, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, CUDA_R_16BF, stream,
            CUDA_R_16BF);
}

void gemm(blas_handle& blas, bool ta, bool tb, index m, index n, index k, float alpha,
          const bf16* a, index lda, const bf16* b, index ldb, float beta, float* c, index ldc,
          stream_t stream) {
    // cublasGemmEx supports A/B in bf16 with C in fp32 under CUBLAS_COMPUTE_32F.
    gemm_ex(blas, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, CUDA_R_16BF, stream,
            CUDA_R_32F);
}

void gemm(blas_handle& blas, bool ta, bool tb, index m, index n, index k, float alpha,
          const float* a, index lda, const float* b, index ldb, float beta, float* c, index ldc,
          stream_t stream) {
    gemm_ex(blas, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, CUDA_R_32F, stream,
            CUDA_R_32F);
}

} // namespace wlb::kernels::cuda
