// Causal attention under the document mask over variable-length chunks (kernels/ops.hpp), on the
// CPU. Per chunk and head, blocks of 64 queries: the score block against every key the block's
// last query sees comes from one GEMM, the causal mask zeroes the probabilities past each
// query's position, and the outputs (forward) or the gradients (backward: dV, dP, dQ, dK) are
// GEMMs again. The softmax is exact per row (max-shifted, sums in double); the backward replays
// the probabilities from the saved log-sum-exp as FlashAttention does. Work is the causal pairs
// plus at most 64 x 64 / 2 masked pairs per block, times head_dim.
#include "base/error.hpp"
#include "kernels/ops.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

namespace wlb::kernels {

void attention_chunks::validate() const {
    const auto n = q_offsets.size();
    WLB_EXPECTS(cu_seqlens_q.size() == n + 1 && cu_seqlens_k.size() == n + 1,
                "attention: {} chunks but {} and {} cu_seqlens", n, cu_seqlens_q.size(),
                cu_seqlens_k.size());
    WLB_EXPECTS(heads >= 1 && head_dim >= 1, "attention: {} heads of {}", heads, head_dim);
    WLB_EXPECTS(cu_seqlens_q[0] == 0 && cu_seqlens_k[0] == 0, "attention: cu_seqlens from 0");
    for (std::size_t c = 0; c < n; ++c) {
        const index nq = cu_seqlens_q[c + 1] - cu_seqlens_q[c];
        const index nk = cu_seqlens_k[c + 1] - cu_seqlens_k[c];
        WLB_EXPECTS(nq >= 0 && nk >= 0 && q_offsets[c] >= 0,
                    "attention chunk {}: {} queries, {} keys, offset {}", c, nq, nk, q_offsets[c]);
        WLB_EXPECTS(nq == 0 || nk >= q_offsets[c] + nq,
                    "attention chunk {}: {} queries at offset {} need {} keys, the segment has {}",
                    c, nq, q_offsets[c], q_offsets[c] + nq, nk);
    }
}

namespace {

/// Query rows per block: the score block is block_rows x (keys of the block's last query).
constexpr index block_rows = 64;

template <typename T>
double dot(const T* a, const T* b, index n) {
    double s = 0;
    for (index i = 0; i < n; ++i)
        s += static_cast<double>(a[i]) * static_cast<double>(b[i]);
    return s;
}

/// One block of queries [i0, i1) of a chunk and one head: pointers at the head's columns of the
/// block's first query row and of the chunk's first key row.
template <typename T>
struct block_view {
    index i0, rows, keys, offset; // keys = offset + i1: the keys the block's last query sees
    const T* q;
    const T* k;
    const T* v;
};

/// scores[r, j] = scale * q_r . k_j for j < keys, then the causal mask (j > offset + i0 + r)
/// applied as probability 0 after the softmax by the callers.
template <typename T>
void block_scores(const block_view<T>& b, index d, index ldq, index ldk, double scale,
                  std::vector<T>& scores) {
    scores.resize(static_cast<std::size_t>(b.rows * b.keys));
    gemm<T>(false, true, b.rows, b.keys, d, static_cast<T>(scale), b.q, ldq, b.k, ldk, T(0),
            scores.data(), b.keys);
}

} // namespace

template <typename T>
void attention_forward(const attention_chunks& ch, const T* q, index ldq, const T* k, index ldk,
                       const T* v, index ldv, T* out, index ldo, T* lse) {
    ch.validate();
    const index d = ch.head_dim;
    std::vector<T> p;
    for (index c = 0; c < ch.chunk_count(); ++c) {
        const auto cu = static_cast<std::size_t>(c);
        const index q0 = ch.cu_seqlens_q[cu];
        const index nq = ch.cu_seqlens_q[cu + 1] - q0;
        const index k0 = ch.cu_seqlens_k[cu];
        const index off = ch.q_offsets[cu];
        for (index h = 0; h < ch.heads; ++h) {
            for (index i0 = 0; i0 < nq; i0 += block_rows) {
                const index rows = std::min(block_rows, nq - i0);
                const block_view<T> b{i0,
                                      rows,
                                      off + i0 + rows,
                                      off,
                                      q + (q0 + i0) * ldq + h * d,
                                      k + k0 * ldk + h * d,
                                      v + k0 * ldv + h * d};
                block_scores(b, d, ldq, ldk, ch.scale, p);
                for (index r = 0; r < rows; ++r) {
                    T* row = p.data() + r * b.keys;
                    const index valid = off + i0 + r + 1;
                    const double mx = static_cast<double>(*std::max_element(row, row + valid));
                    double sum = 0;
                    for (index j = 0; j < valid; ++j) {
                        // exp in T: float rows use the float exp (the sum stays in double).
                        const T e = std::exp(row[j] - static_cast<T>(mx));
                        row[j] = e;
                        sum += static_cast<double>(e);
                    }
                    const double inv = 1.0 / sum;
                    for (index j = 0; j < valid; ++j)
                        row[j] = static_cast<T>(static_cast<double>(row[j]) * inv);
                    std::fill(row + valid, row + b.keys, T(0));
                    lse[(q0 + i0 + r) * ch.heads + h] = static_cast<T>(mx + std::log(sum));
                }
                gemm<T>(false, false, rows, d, b.keys, T(1), p.data(), b.keys, b.v, ldv, T(0),
                        out + (q0 + i0) * ldo + h * d, ldo);
            }
        }
    }
}

template <typename T>
void attention_backward(const attention_chunks& ch, const T* q, index ldq, const T* k, index ldk,
                        const T* v, index ldv, const T* out, index ldo, const T* dout, index lddo,
                        const T* lse, T* dq, index lddq, T* dk, index lddk, T* dv, index lddv) {
    // Every query row lies in exactly one chunk (cu_seqlens_q partitions [0, total_q)), so dq is
    // written block by block; dk and dv accumulate over the blocks and start from zero.
    ch.validate();
    const index d = ch.head_dim;
    const index width = ch.heads * d;
    const index total_k = ch.cu_seqlens_k.back();
    for (index t = 0; t < total_k; ++t) {
        std::fill_n(dk + t * lddk, width, T(0));
        std::fill_n(dv + t * lddv, width, T(0));
    }
    std::vector<T> p, dp;
    for (index c = 0; c < ch.chunk_count(); ++c) {
        const auto cu = static_cast<std::size_t>(c);
        const index q0 = ch.cu_seqlens_q[cu];
        const index nq = ch.cu_seqlens_q[cu + 1] - q0;
        const index k0 = ch.cu_seqlens_k[cu];
        const index off = ch.q_offsets[cu];
        for (index h = 0; h < ch.heads; ++h) {
            for (index i0 = 0; i0 < nq; i0 += block_rows) {
                const index rows = std::min(block_rows, nq - i0);
                const block_view<T> b{i0,
                                      rows,
                                      off + i0 + rows,
                                      off,
                                      q + (q0 + i0) * ldq + h * d,
                                      k + k0 * ldk + h * d,
                                      v + k0 * ldv + h * d};
                const T* dob = dout + (q0 + i0) * lddo + h * d;
                // P from the saved log-sum-exp.
                block_scores(b, d, ldq, ldk, ch.scale, p);
                for (index r = 0; r < rows; ++r) {
                    T* row = p.data() + r * b.keys;
                    const index valid = off + i0 + r + 1;
                    const double row_lse = static_cast<double>(lse[(q0 + i0 + r) * ch.heads + h]);
                    for (index j = 0; j < valid; ++j)
                        row[j] = std::exp(row[j] - static_cast<T>(row_lse));
                    std::fill(row + valid, row + b.keys, T(0));
                }
                // dV += P^T dO;  dP = dO V^T
                gemm<T>(true, false, b.keys, d, rows, T(1), p.data(), b.keys, dob, lddo, T(1),
                        dv + k0 * lddv + h * d, lddv);
                dp.resize(p.size());
                gemm<T>(false, true, rows, b.keys, d, T(1), dob, lddo, b.v, ldv, T(0), dp.data(),
                        b.keys);
                // dS = scale * P * (dP - rowsum(dO * O)), written over dP.
                for (index r = 0; r < rows; ++r) {
                    const double di = dot(dob + r * lddo, out + (q0 + i0 + r) * ldo + h * d, d);
                    T* ds = dp.data() + r * b.keys;
                    const T* pr = p.data() + r * b.keys;
                    for (index j = 0; j < b.keys; ++j)
                        ds[j] = static_cast<T>(ch.scale * static_cast<double>(pr[j]) *
                                               (static_cast<double>(ds[j]) - di));
                }
                // dQ = dS K;  dK += dS^T Q
                gemm<T>(false, false, rows, d, b.keys, T(1), dp.data(), b.keys, b.k, ldk, T(0),
                        dq + (q0 + i0) * lddq + h * d, lddq);
                gemm<T>(true, false, b.keys, d, rows, T(1), dp.data(), b.keys, b.q, ldq, T(1),
                        dk + k0 * lddk + h * d, lddk);
            }
        }
    }
}

#define WLB_INSTANTIATE(T)                                                                         \
    template void attention_forward<T>(const attention_chunks&, const T*, index, const T*, index,  \
                                       const T*, index, T*, index, T*);                            \
    template void attention_backward<T>(const attention_chunks&, const T*, index, const T*, index, \
                                        const T*, index, const T*, index, const T*, index,         \
                                        const T*, T*, index, T*, index, T*, index);
WLB_INSTANTIATE(float)
WLB_INSTANTIATE(double)
#undef WLB_INSTANTIATE

} // namespace wlb::kernels
