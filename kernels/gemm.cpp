// GEMM through OpenBLAS' cblas (row-major), float and double.
#include "base/error.hpp"
#include "kernels/ops.hpp"

#include <cblas.h>

namespace wlb::kernels {

namespace {

CBLAS_TRANSPOSE op(bool t) {
    return t ? CblasTrans : CblasNoTrans;
}

void check(index m, index n, index k, index lda, index ldb, index ldc, bool ta, bool tb) {
    WLB_EXPECTS(m >= 0 && n >= 0 && k >= 0, "gemm of {} x {} x {}", m, n, k);
    WLB_EXPECTS(lda >= (ta ? m : k) && ldb >= (tb ? k : n) && ldc >= n,
                "gemm strides lda {} ldb {} ldc {} too small for {} x {} x {}", lda, ldb, ldc, m, n,
                k);
    WLB_EXPECTS(m < (index{1} << 31) && n < (index{1} << 31) && k < (index{1} << 31),
                "gemm dimensions exceed BLAS int");
}

} // namespace

template <>
void gemm<float>(bool ta, bool tb, index m, index n, index k, float alpha, const float* a,
                 index lda, const float* b, index ldb, float beta, float* c, index ldc) {
    check(m, n, k, lda, ldb, ldc, ta, tb);
    if (m == 0 || n == 0)
        return;
    cblas_sgemm(CblasRowMajor, op(ta), op(tb), static_cast<int>(m), static_cast<int>(n),
                static_cast<int>(k), alpha, a, static_cast<int>(lda), b, static_cast<int>(ldb),
                beta, c, static_cast<int>(ldc));
}

template <>
void gemm<double>(bool ta, bool tb, index m, index n, index k, double alpha, const double* a,
                  index lda, const double* b, index ldb, double beta, double* c, index ldc) {
    check(m, n, k, lda, ldb, ldc, ta, tb);
    if (m == 0 || n == 0)
        return;
    cblas_dgemm(CblasRowMajor, op(ta), op(tb), static_cast<int>(m), static_cast<int>(n),
                static_cast<int>(k), alpha, a, static_cast<int>(lda), b, static_cast<int>(ldb),
                beta, c, static_cast<int>(ldc));
}

void set_blas_threads(int threads) {
    openblas_set_num_threads(threads < 1 ? 1 : threads);
}

} // namespace wlb::kernels
