// The host interface of the compute kernels of a decoder layer, forward and backward, in float
// and double. The CPU implementations are kernels/*.cpp (GEMM through OpenBLAS' cblas, the rest
// plain loops); the CUDA kernels will implement the same functions on device pointers.
//
// Conventions:
// - Matrices are row-major; `ld*` is a matrix's row stride in elements (>= its columns), so a
//   slice of columns of a wider buffer (the Q heads of a fused QKV activation) is passed as a
//   pointer plus the wide buffer's stride.
// - Token-major activations: row t is token t; attention rows hold heads * head_dim values,
//   head h at columns [h * head_dim, (h + 1) * head_dim).
// - Backward functions that produce parameter gradients ACCUMULATE into them (gradient
//   accumulation over micro-batches); activation gradients are OVERWRITTEN unless stated.
// - Integers are std::int64_t; no kernel allocates more than O(longest key segment) scratch.
#pragma once

#include <cstdint>
#include <span>

namespace wlb::kernels {

using index = std::int64_t;

// ---- GEMM (kernels/gemm.cpp) ----------------------------------------------------------------

/// C[m x n] = alpha * op(A) op(B) + beta * C, op(X) = X or X^T; op(A) is m x k, op(B) is k x n.
template <typename T>
void gemm(bool transpose_a, bool transpose_b, index m, index n, index k, T alpha, const T* a,
          index lda, const T* b, index ldb, T beta, T* c, index ldc);

/// Threads the BLAS library may use per call (1 when several ranks share the cores).
void set_blas_threads(int threads);

// ---- Element-wise and row-wise (kernels/elementwise.cpp) -------------------------------------

/// y = x / rms(x) * weight per row, rms(x) = sqrt(mean(x^2) + eps); saves rstd[r] = 1/rms.
template <typename T>
void rms_norm_forward(const T* x, const T* weight, index rows, index cols, T eps, T* y, T* rstd);
/// dx (overwritten) and dweight (accumulated) from dy, with the rstd of the forward.
template <typename T>
void rms_norm_backward(const T* x, const T* weight, const T* rstd, const T* dy, index rows,
                       index cols, T* dx, T* dweight);

/// out = silu(gate) * up, element-wise over n values; silu(g) = g / (1 + exp(-g)).
template <typename T>
void swiglu_forward(const T* gate, const T* up, index n, T* out);
/// dgate and dup (overwritten) from dout.
template <typename T>
void swiglu_backward(const T* gate, const T* up, const T* dout, index n, T* dgate, T* dup);

/// Rotary position embedding (GPT-NeoX half-split form) applied in place to `rows` rows of
/// `heads` heads of head_dim (even) values with row stride ld; token r sits at position
/// positions[r] (its position in its document). inverse = true applies the transpose rotation,
/// which is the backward of the forward rotation.
template <typename T>
void rotary(T* x, index rows, index heads, index head_dim, index ld, const index* positions,
            double base, bool inverse);

/// out[r, :] = table[ids[r], :] for `rows` ids; table is vocab x cols.
template <typename T>
void embedding_forward(const T* table, const std::int32_t* ids, index rows, index cols, T* out);
/// dtable[ids[r], :] += dout[r, :] (accumulated).
template <typename T>
void embedding_backward(const T* dout, const std::int32_t* ids, index rows, index cols, T* dtable);

/// Softmax cross-entropy over rows x vocab logits with integer labels (label < 0: ignored row).
/// Returns the sum of -log softmax(logits)[label] over labelled rows (in double), and writes
/// dlogits = grad_scale * (softmax - onehot(label)) (zero on ignored rows), overwritten.
template <typename T>
double cross_entropy(const T* logits, const std::int32_t* labels, index rows, index vocab,
                     T grad_scale, T* dlogits);

// ---- Attention over variable-length chunks (kernels/attention.cpp) ---------------------------

/// Causal attention under the document mask for a list of chunks (design.md "Batch"): chunk c
/// holds queries [cu_seqlens_q[c], cu_seqlens_q[c+1]) that are tokens q_offsets[c] + i of their
/// document, and keys [cu_seqlens_k[c], cu_seqlens_k[c+1]) that are tokens 0, 1, ... of the same
/// document. Query i of chunk c attends keys 0 .. q_offsets[c] + i of its key segment, so the
/// key segment must hold at least q_offsets[c] + (query count) keys; extra keys are masked.
/// A whole document is one chunk with q_offset 0; a CP chunk carries its earlier-token count.
struct attention_chunks {
    std::span<const index> cu_seqlens_q; ///< chunks + 1 non-decreasing offsets, from 0
    std::span<const index> cu_seqlens_k; ///< chunks + 1 non-decreasing offsets, from 0
    std::span<const index> q_offsets;    ///< chunks values >= 0
    index heads = 1;
    index head_dim = 1;
    double scale = 1.0; ///< softmax scale, usually 1 / sqrt(head_dim)

    [[nodiscard]] index chunk_count() const noexcept {
        return static_cast<index>(q_offsets.size());
    }
    /// Throws wlb::internal_error when the spans disagree or a key segment is too short.
    void validate() const;
};

/// out (total_q x heads*head_dim, stride ldo) and lse (total_q x heads: log-sum-exp of the
/// scaled scores of each query row and head, saved for the backward).
template <typename T>
void attention_forward(const attention_chunks& chunks, const T* q, index ldq, const T* k, index ldk,
                       const T* v, index ldv, T* out, index ldo, T* lse);

/// dq (total_q rows), dk and dv (total_k rows) overwritten, from dout and the forward's out and
/// lse.
template <typename T>
void attention_backward(const attention_chunks& chunks, const T* q, index ldq, const T* k,
                        index ldk, const T* v, index ldv, const T* out, index ldo, const T* dout,
                        index lddo, const T* lse, T* dq, index lddq, T* dk, index lddk, T* dv,
                        index lddv);

} // namespace wlb::kernels
