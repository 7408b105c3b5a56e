// The fragment arithmetic of the tensor-core attention kernels (kernels/mma_fragments.hpp)
// without a GPU: 32 lanes are simulated on the host, a reference mma.m16n8k16 decodes the
// fragments with the PTX layout table (written here independently of the loaders), and the
// products the kernels form (S = Q K^T from rows, O = P V with P reused from the C tiles and V
// read by columns, and the offsets the kernels use) equal plain matrix products.
#include "kernels/bf16.hpp"
#include "kernels/mma_fragments.hpp"

#include <cmath>
#include <cstdint>
#include <gtest/gtest.h>
#include <random>
#include <vector>

namespace k = wlb::kernels;
namespace mma = wlb::kernels::mma;

namespace {

float lo(std::uint32_t r) {
    return static_cast<float>(k::bf16::from_bits(static_cast<std::uint16_t>(r & 0xffffu)));
}
float hi(std::uint32_t r) {
    return static_cast<float>(k::bf16::from_bits(static_cast<std::uint16_t>(r >> 16)));
}

using a_frags = std::uint32_t[32][4];
using b_frags = std::uint32_t[32][2];
using c_frags = float[32][4];

/// D = A B + C for one warp, every fragment decoded with the PTX table.
void reference_mma(c_frags& c, const a_frags& a, const b_frags& b) {
    float A[16][16], B[16][8], C[16][8];
    for (int lane = 0; lane < 32; ++lane) {
        const int g = lane / 4, t = lane % 4;
        A[g][2 * t] = lo(a[lane][0]);
        A[g][2 * t + 1] = hi(a[lane][0]);
        A[g + 8][2 * t] = lo(a[lane][1]);
        A[g + 8][2 * t + 1] = hi(a[lane][1]);
        A[g][2 * t + 8] = lo(a[lane][2]);
        A[g][2 * t + 9] = hi(a[lane][2]);
        A[g + 8][2 * t + 8] = lo(a[lane][3]);
        A[g + 8][2 * t + 9] = hi(a[lane][3]);
        B[2 * t][g] = lo(b[lane][0]);
        B[2 * t + 1][g] = hi(b[lane][0]);
        B[2 * t + 8][g] = lo(b[lane][1]);
        B[2 * t + 9][g] = hi(b[lane][1]);
        C[g][2 * t] = c[lane][0];
        C[g][2 * t + 1] = c[lane][1];
        C[g + 8][2 * t] = c[lane][2];
        C[g + 8][2 * t + 1] = c[lane][3];
    }
    for (int i = 0; i < 16; ++i)
        for (int j = 0; j < 8; ++j) {
            double s = C[i][j];
            for (int p = 0; p < 16; ++p)
                s += static_cast<double>(A[i][p]) * B[p][j];
            C[i][j] = static_cast<float>(s);
        }
    for (int lane = 0; lane < 32; ++lane) {
        const int g = lane / 4, t = lane % 4;
        c[lane][0] = C[g][2 * t];
        c[lane][1] = C[g][2 * t + 1];
        c[lane][2] = C[g + 8][2 * t];
        c[lane][3] = C[g + 8][2 * t + 1];
    }
}

/// A row-major bf16 matrix with padded rows (the kernels' shared-memory layout).
struct matrix {
    int rows, cols, ld;
    std::vector<std::uint16_t> bits;
    std::vector<float> values;
    matrix(int r, int c, unsigned seed) : rows(r), cols(c), ld(c + 8) {
        std::mt19937 rng(seed);
        std::normal_distribution<float> dist(0.f, 1.f);
        bits.assign(static_cast<std::size_t>(rows * ld), 0);
        values.assign(bits.size(), 0.f);
        for (int i = 0; i < rows; ++i)
            for (int j = 0; j < cols; ++j) {
                const k::bf16 v(dist(rng));
                bits[static_cast<std::size_t>(i * ld + j)] = v.bits;
                values[static_cast<std::size_t>(i * ld + j)] = static_cast<float>(v);
            }
    }
    [[nodiscard]] float at(int i, int j) const {
        return values[static_cast<std::size_t>(i * ld + j)];
    }
};

std::uint32_t pack_host(float a, float b) {
    return static_cast<std::uint32_t>(k::bf16(a).bits) |
           (static_cast<std::uint32_t>(k::bf16(b).bits) << 16);
}

// The forward kernel's per-warp products: S (16 rows x 64 keys) = Q[r0..] K^T, then
// O (16 x D) = bf16(S) V, with the loaders and offsets of kernels/attention_fwd.cu.
TEST(MmaFragments, ForwardProductsEqualPlainMatrixProducts) {
    constexpr int D = 128, keys = 64, r0 = 32;
    const matrix q(64, D, 1), kk(keys, D, 2), v(keys, D, 3);
    c_frags s[keys / 8] = {};
    for (int kc = 0; kc < D / 16; ++kc)
        for (int nt = 0; nt < keys / 8; ++nt) {
            a_frags a;
            b_frags b;
            for (int lane = 0; lane < 32; ++lane) {
                mma::load_a(a[lane], q.bits.data(), q.ld, r0, kc * 16, lane / 4, lane % 4);
                mma::load_b_from_rows(b[lane], kk.bits.data(), kk.ld, nt * 8, kc * 16, lane / 4,
                                      lane % 4);
            }
            reference_mma(s[nt], a, b);
        }
    // S equals Q K^T.
    float S[16][keys];
    for (int nt = 0; nt < keys / 8; ++nt)
        for (int lane = 0; lane < 32; ++lane) {
            const int g = lane / 4, t = lane % 4;
            for (int e = 0; e < 4; ++e) {
                const int row = g + 8 * (e >> 1), col = nt * 8 + 2 * t + (e & 1);
                S[row][col] = s[nt][lane][e];
                double want = 0;
                for (int x = 0; x < D; ++x)
                    want += static_cast<double>(q.at(r0 + row, x)) * kk.at(col, x);
                ASSERT_NEAR(S[row][col], want, 1e-3 * (1 + std::abs(want)))
                    << "S[" << row << "][" << col << "]";
            }
        }
    // O = bf16(S) V with P taken from pairs of C tiles and V read by columns.
    for (int dt = 0; dt < D / 8; ++dt) {
        c_frags o = {};
        for (int kc = 0; kc < keys / 16; ++kc) {
            a_frags a;
            b_frags b;
            for (int lane = 0; lane < 32; ++lane) {
                mma::c_pair_to_a(a[lane], s[2 * kc][lane], s[2 * kc + 1][lane], pack_host);
                mma::load_b_from_columns(b[lane], v.bits.data(), v.ld, kc * 16, dt * 8, lane / 4,
                                         lane % 4);
            }
            reference_mma(o, a, b);
        }
        for (int lane = 0; lane < 32; ++lane) {
            const int g = lane / 4, t = lane % 4;
            for (int e = 0; e < 4; ++e) {
                const int row = g + 8 * (e >> 1), col = dt * 8 + 2 * t + (e & 1);
                double want = 0;
                for (int j = 0; j < keys; ++j)
                    want += static_cast<double>(k::round_to_bf16(S[row][j])) * v.at(j, col);
                ASSERT_NEAR(o[lane][e], want, 1e-3 * (1 + std::abs(want)))
                    << "O[" << row << "][" << col << "]";
            }
        }
    }
}

// The backward kernel's dQ product: 16 query rows of dS (stored [query][key] with stride 72)
// times K (64 keys x D) read by columns, at the warp offsets of kernels/attention_bwd.cu.
TEST(MmaFragments, BackwardDqProductEqualsPlainMatrixProduct) {
    constexpr int D = 64, keys = 64, qr0 = 48;
    const matrix ds(64, keys, 4), kk(keys, D, 5);
    for (int dt = 0; dt < D / 8; ++dt) {
        c_frags acc = {};
        for (int kc = 0; kc < keys / 16; ++kc) {
            a_frags a;
            b_frags b;
            for (int lane = 0; lane < 32; ++lane) {
                mma::load_a(a[lane], ds.bits.data(), ds.ld, qr0, kc * 16, lane / 4, lane % 4);
                mma::load_b_from_columns(b[lane], kk.bits.data(), kk.ld, kc * 16, dt * 8, lane / 4,
                                         lane % 4);
            }
            reference_mma(acc, a, b);
        }
        for (int lane = 0; lane < 32; ++lane)
            for (int e = 0; e < 4; ++e) {
                const int row = lane / 4 + 8 * (e >> 1), col = dt * 8 + 2 * (lane % 4) + (e & 1);
                double want = 0;
                for (int j = 0; j < keys; ++j)
                    want += static_cast<double>(ds.at(qr0 + row, j)) * kk.at(j, col);
                ASSERT_NEAR(acc[lane][e], want, 1e-3 * (1 + std::abs(want)));
            }
    }
}

} // namespace
