// GPU tier: the CUDA element-wise kernels and the cuBLAS GEMMs (kernels/cuda_ops.hpp) against
// the CPU kernels (kernels/ops.hpp) on the same bf16-rounded inputs, norm-wise relative error
// under 1e-2 (bf16 outputs) or 1e-5 (fp32 GEMM). Skips with the reason without a CUDA device.
#include "kernels/cuda_ops.hpp"
#include "kernels/ops.hpp"
#include "support/gpu_test.hpp"

#include <gtest/gtest.h>
#include <vector>

namespace k = wlb::kernels;
namespace kc = wlb::kernels::cuda;
using ix = k::index;
using wlb::test::bf16_tolerance;
using wlb::test::relative_error;
using wlb::test::to_float;

namespace {

TEST(CudaElementwise, RmsNormForwardAndBackwardMatchCpu) {
    WLB_REQUIRE_GPU();
    const ix rows = 257, cols = 1000;
    const auto n = static_cast<std::size_t>(rows * cols);
    auto x = wlb::test::random_bf16(n, 1);
    auto w = wlb::test::random_bf16(static_cast<std::size_t>(cols), 2);
    auto dy = wlb::test::random_bf16(n, 3);
    const float eps = 1e-5f;
    std::vector<float> y_ref(n), rstd_ref(static_cast<std::size_t>(rows)), dx_ref(n);
    std::vector<float> dw_ref(static_cast<std::size_t>(cols), 0.5f); // accumulates onto 0.5
    k::rms_norm_forward<float>(x.values.data(), w.values.data(), rows, cols, eps, y_ref.data(),
                               rstd_ref.data());
    k::rms_norm_backward<float>(x.values.data(), w.values.data(), rstd_ref.data(), dy.values.data(),
                                rows, cols, dx_ref.data(), dw_ref.data());

    kc::device_array<k::bf16> x_d(x.bits), w_d(w.bits), dy_d(dy.bits), y_d(n), dx_d(n);
    kc::device_array<float> rstd_d(static_cast<std::size_t>(rows));
    kc::device_array<float> dw_d(std::vector<float>(static_cast<std::size_t>(cols), 0.5f));
    kc::rms_norm_forward(x_d.data(), w_d.data(), rows, cols, eps, y_d.data(), rstd_d.data());
    kc::rms_norm_backward(x_d.data(), w_d.data(), rstd_d.data(), dy_d.data(), rows, cols,
                          dx_d.data(), dw_d.data());
    EXPECT_LT(relative_error(to_float(y_d.download()), y_ref), bf16_tolerance);
    EXPECT_LT(relative_error(rstd_d.download(), rstd_ref), 1e-5);
    EXPECT_LT(relative_error(to_float(dx_d.download()), dx_ref), bf16_tolerance);
    EXPECT_LT(relative_error(dw_d.download(), dw_ref), 1e-4);
}

TEST(CudaElementwise, SwigluForwardAndBackwardMatchCpu) {
    WLB_REQUIRE_GPU();
    const ix n = 100003;
    const auto un = static_cast<std::size_t>(n);
    auto gate = wlb::test::random_bf16(un, 4, 3.0f);
    auto up = wlb::test::random_bf16(un, 5);
    auto dout = wlb::test::random_bf16(un, 6);
    std::vector<float> out_ref(un), dg_ref(un), du_ref(un);
    k::swiglu_forward<float>(gate.values.data(), up.values.data(), n, out_ref.data());
    k::swiglu_backward<float>(gate.values.data(), up.values.data(), dout.values.data(), n,
                              dg_ref.data(), du_ref.data());
    kc::device_array<k::bf16> g_d(gate.bits), u_d(up.bits), do_d(dout.bits), out_d(un), dg_d(un),
        du_d(un);
    kc::swiglu_forward(g_d.data(), u_d.data(), n, out_d.data());
    kc::swiglu_backward(g_d.data(), u_d.data(), do_d.data(), n, dg_d.data(), du_d.data());
    EXPECT_LT(relative_error(to_float(out_d.download()), out_ref), bf16_tolerance);
    EXPECT_LT(relative_error(to_float(dg_d.download()), dg_ref), bf16_tolerance);
    EXPECT_LT(relative_error(to_float(du_d.download()), du_ref), bf16_tolerance);
}

TEST(CudaElementwise, RotaryMatchesCpuAtLongPositionsAndInverts) {
    WLB_REQUIRE_GPU();
    const ix rows = 300, heads = 3, d = 64, ld = heads * d + 8;
    const auto n = static_cast<std::size_t>(rows * ld);
    auto x = wlb::test::random_bf16(n, 7);
    std::vector<ix> positions(static_cast<std::size_t>(rows));
    for (ix r = 0; r < rows; ++r)
        positions[static_cast<std::size_t>(r)] = r * 437 + (r % 7) * 100000; // up to ~730K
    std::vector<float> ref = x.values;
    k::rotary<float>(ref.data(), rows, heads, d, ld, positions.data(), 10000.0, false);
    kc::device_array<k::bf16> x_d(x.bits);
    kc::device_array<ix> pos_d(positions);
    kc::rotary(x_d.data(), rows, heads, d, ld, pos_d.data(), 10000.0, false);
    const auto rotated = to_float(x_d.download());
    EXPECT_LT(relative_error(rotated, ref, static_cast<std::size_t>(rows),
                             static_cast<std::size_t>(heads * d), static_cast<std::size_t>(ld)),
              bf16_tolerance);
    kc::rotary(x_d.data(), rows, heads, d, ld, pos_d.data(), 10000.0, true);
    EXPECT_LT(relative_error(to_float(x_d.download()), x.values), 2 * bf16_tolerance)
        << "the inverse rotation restores the input up to two bf16 roundings";
}

template <typename T>
std::vector<float> run_gemm(bool ta, bool tb, ix m, ix n, ix kk, const std::vector<T>& a, ix lda,
                            const std::vector<T>& b, ix ldb, const std::vector<T>& c0, ix ldc) {
    kc::blas_handle blas;
    kc::device_array<T> a_d(a), b_d(b), c_d(c0);
    kc::gemm(blas, ta, tb, m, n, kk, 2.0f, a_d.data(), lda, b_d.data(), ldb, 0.5f, c_d.data(), ldc);
    if constexpr (std::is_same_v<T, float>)
        return c_d.download();
    else
        return to_float(c_d.download());
}

TEST(CudaGemm, Bf16AndFp32MatchCpuForEveryTranspose) {
    WLB_REQUIRE_GPU();
    const ix m = 96, n = 80, kk = 200;
    for (bool ta : {false, true})
        for (bool tb : {false, true}) {
            const ix lda = (ta ? m : kk) + 8, ldb = (tb ? kk : n) + 8, ldc = n + 8;
            auto a = wlb::test::random_bf16(static_cast<std::size_t>((ta ? kk : m) * lda), 8);
            auto b = wlb::test::random_bf16(static_cast<std::size_t>((tb ? n : kk) * ldb), 9);
            auto c = wlb::test::random_bf16(static_cast<std::size_t>(m * ldc), 10);
            std::vector<float> ref = c.values;
            k::gemm<float>(ta, tb, m, n, kk, 2.0f, a.values.data(), lda, b.values.data(), ldb, 0.5f,
                           ref.data(), ldc);
            const auto um = static_cast<std::size_t>(m);
            const auto un = static_cast<std::size_t>(n);
            const auto uldc = static_cast<std::size_t>(ldc);
            EXPECT_LT(
                relative_error(run_gemm(ta, tb, m, n, kk, a.bits, lda, b.bits, ldb, c.bits, ldc),
                               ref, um, un, uldc),
                bf16_tolerance)
                << "bf16 ta=" << ta << " tb=" << tb;
            EXPECT_LT(relative_error(
                          run_gemm(ta, tb, m, n, kk, a.values, lda, b.values, ldb, c.values, ldc),
                          ref, um, un, uldc),
                      1e-5)
                << "fp32 ta=" << ta << " tb=" << tb;
        }
}

} // namespace
