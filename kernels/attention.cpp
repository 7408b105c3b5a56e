// Causal attention under the document mask over variable-length chunks (kernels/ops.hpp), on the
// CPU: exact two-pass softmax per query row (scores, then max-shifted exponentials), the saved
// log-sum-exp replaying the probabilities in the backward as FlashAttention does. Scores and
// sums are accumulated in double for both element types. O(pairs * head_dim) work per head.
#include "kernels/ops.hpp"
#include "runtime/error.hpp"

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

template <typename T>
double dot(const T* a, const T* b, index n) {
    double s = 0;
    for (index i = 0; i < n; ++i)
        s += static_cast<double>(a[i]) * static_cast<double>(b[i]);
    return s;
}

} // namespace

template <typename T>
void attention_forward(const attention_chunks& ch, const T* q, index ldq, const T* k, index ldk,
                       const T* v, index ldv, T* out, index ldo, T* lse) {
    ch.validate();
    const index d = ch.head_dim;
    std::vector<double> scores;
    std::vector<double> acc(static_cast<std::size_t>(d));
    for (index c = 0; c < ch.chunk_count(); ++c) {
        const auto cu = static_cast<std::size_t>(c);
        const index q0 = ch.cu_seqlens_q[cu];
        const index nq = ch.cu_seqlens_q[cu + 1] - q0;
        const index k0 = ch.cu_seqlens_k[cu];
        for (index h = 0; h < ch.heads; ++h) {
            for (index i = 0; i < nq; ++i) {
                const index keys = ch.q_offsets[cu] + i + 1;
                const T* qi = q + (q0 + i) * ldq + h * d;
                scores.resize(static_cast<std::size_t>(keys));
                double mx = -INFINITY;
                for (index j = 0; j < keys; ++j) {
                    const double s = ch.scale * dot(qi, k + (k0 + j) * ldk + h * d, d);
                    scores[static_cast<std::size_t>(j)] = s;
                    mx = std::max(mx, s);
                }
                double sum = 0;
                std::fill(acc.begin(), acc.end(), 0.0);
                for (index j = 0; j < keys; ++j) {
                    const double p = std::exp(scores[static_cast<std::size_t>(j)] - mx);
                    sum += p;
                    const T* vj = v + (k0 + j) * ldv + h * d;
                    for (index e = 0; e < d; ++e)
                        acc[static_cast<std::size_t>(e)] += p * static_cast<double>(vj[e]);
                }
                T* oi = out + (q0 + i) * ldo + h * d;
                for (index e = 0; e < d; ++e)
                    oi[e] = static_cast<T>(acc[static_cast<std::size_t>(e)] / sum);
                lse[(q0 + i) * ch.heads + h] = static_cast<T>(mx + std::log(sum));
            }
        }
    }
}

template <typename T>
void attention_backward(const attention_chunks& ch, const T* q, index ldq, const T* k, index ldk,
                        const T* v, index ldv, const T* out, index ldo, const T* dout, index lddo,
                        const T* lse, T* dq, index lddq, T* dk, index lddk, T* dv, index lddv) {
    // Every query row lies in exactly one chunk (cu_seqlens_q partitions [0, total_q)), so dq is
    // written row by row; key rows outside every chunk's causal range get zero.
    ch.validate();
    const index d = ch.head_dim;
    const index width = ch.heads * d;
    const index total_k = ch.cu_seqlens_k.back();
    // Accumulate the key-side gradients in double: many queries add into one key row.
    std::vector<double> dk_acc(static_cast<std::size_t>(total_k * width), 0.0);
    std::vector<double> dv_acc(static_cast<std::size_t>(total_k * width), 0.0);
    std::vector<double> dq_acc(static_cast<std::size_t>(d));
    for (index c = 0; c < ch.chunk_count(); ++c) {
        const auto cu = static_cast<std::size_t>(c);
        const index q0 = ch.cu_seqlens_q[cu];
        const index nq = ch.cu_seqlens_q[cu + 1] - q0;
        const index k0 = ch.cu_seqlens_k[cu];
        for (index h = 0; h < ch.heads; ++h) {
            for (index i = 0; i < nq; ++i) {
                const index keys = ch.q_offsets[cu] + i + 1;
                const T* qi = q + (q0 + i) * ldq + h * d;
                const T* doi = dout + (q0 + i) * lddo + h * d;
                const double row_lse = static_cast<double>(lse[(q0 + i) * ch.heads + h]);
                const double di = dot(doi, out + (q0 + i) * ldo + h * d, d);
                std::fill(dq_acc.begin(), dq_acc.end(), 0.0);
                for (index j = 0; j < keys; ++j) {
                    const T* kj = k + (k0 + j) * ldk + h * d;
                    const T* vj = v + (k0 + j) * ldv + h * d;
                    const double p = std::exp(ch.scale * dot(qi, kj, d) - row_lse);
                    const double ds = p * (dot(doi, vj, d) - di) * ch.scale;
                    double* dkj = dk_acc.data() + (k0 + j) * width + h * d;
                    double* dvj = dv_acc.data() + (k0 + j) * width + h * d;
                    for (index e = 0; e < d; ++e) {
                        const auto ue = static_cast<std::size_t>(e);
                        dq_acc[ue] += ds * static_cast<double>(kj[e]);
                        dkj[e] += ds * static_cast<double>(qi[e]);
                        dvj[e] += p * static_cast<double>(doi[e]);
                    }
                }
                T* dqi = dq + (q0 + i) * lddq + h * d;
                for (index e = 0; e < d; ++e)
                    dqi[e] = static_cast<T>(dq_acc[static_cast<std::size_t>(e)]);
            }
        }
    }
    for (index t = 0; t < total_k; ++t)
        for (index e = 0; e < width; ++e) {
            dk[t * lddk + e] = static_cast<T>(dk_acc[static_cast<std::size_t>(t * width + e)]);
            dv[t * lddv + e] = static_cast<T>(dv_acc[static_cast<std::size_t>(t * width + e)]);
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
