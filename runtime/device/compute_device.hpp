// The compute device seam of the device decoder step (issue [cuda-run]): every kernel the step
// needs, on typed ranges of the device's own memory, queued in order on the device's stream. Two
// implementations:
//
//   host  runtime/device/host_device.hpp: float storage for every floating type (bf16 too), the
//         CPU kernels of kernels/ops.hpp, synchronous. The reference the unit tests run the whole
//         device step on (every layout, against the CPU backend's gradients), with no GPU.
//   cuda  runtime/device/cuda_device.hpp: bf16 activations and weights with fp32 accumulation,
//         fp32 master weights and gradients, the CUDA kernels of kernels/cuda_ops.hpp, cuBLAS,
//         one non-blocking stream per device object, stream-ordered allocation.
//
// So the step's orchestration (token layout, sequence-parallel TP, CP key/value exchange, PP
// transfers, gradient accumulation, reductions, optimizer) is one piece of host code, checked on
// the host; a GPU adds only the kernels, each checked against its CPU kernel in tests/gpu.
//
// Conventions (kernels/ops.hpp's): row-major matrices with a row stride `ld` in elements;
// parameter-gradient outputs ACCUMULATE (fp32), activation outputs are OVERWRITTEN. Every call
// is asynchronous on the device's stream except download() and seconds_between(), which wait.
// Broken preconditions (types, sizes) throw wlb::internal_error.
#pragma once

#include "kernels/ops.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace wlb::runtime {

using kernels::index;

/// Element types of device memory. bf16: activations and working weights; f32: master weights,
/// gradients, statistics (rstd, lse); f64: the loss sum; i32: token ids and labels; i64:
/// positions and index maps.
enum class dtype : std::uint8_t { bf16, f32, f64, i32, i64 };
[[nodiscard]] std::string_view dtype_name(dtype t) noexcept;
[[nodiscard]] constexpr bool is_floating(dtype t) noexcept {
    return t == dtype::bf16 || t == dtype::f32 || t == dtype::f64;
}

/// `count` elements of `type` at `data` in a device's memory; `element_bytes` is that device's
/// storage of one element (the host device stores bf16 as float).
struct dspan {
    void* data = nullptr;
    dtype type = dtype::f32;
    std::size_t count = 0;
    std::size_t element_bytes = 4;

    /// Elements [offset, offset + n). Checks the range.
    [[nodiscard]] dspan sub(std::size_t offset, std::size_t n) const;
    /// Rows [row, row + rows) of a matrix of `width` columns stored densely.
    [[nodiscard]] dspan rows(index row, index rows, index width) const {
        return sub(static_cast<std::size_t>(row * width), static_cast<std::size_t>(rows * width));
    }
    [[nodiscard]] std::size_t bytes() const noexcept { return count * element_bytes; }
    template <typename T>
    [[nodiscard]] T* as() const noexcept {
        return static_cast<T*>(data);
    }
};

/// One allocation of a compute_device, freed (in its stream's order) when the last copy goes.
class dbuffer {
public:
    dbuffer() = default;
    dbuffer(std::shared_ptr<void> storage, dspan whole)
        : m_storage(std::move(storage)), m_span(whole) {}
    [[nodiscard]] const dspan& span() const noexcept { return m_span; }
    operator dspan() const noexcept { return m_span; } // NOLINT: a buffer is its whole range
    [[nodiscard]] dspan sub(std::size_t offset, std::size_t n) const {
        return m_span.sub(offset, n);
    }
    [[nodiscard]] dspan rows(index row, index rows, index width) const {
        return m_span.rows(row, rows, width);
    }
    [[nodiscard]] std::size_t count() const noexcept { return m_span.count; }
    [[nodiscard]] bool empty() const noexcept { return m_span.count == 0; }

private:
    std::shared_ptr<void> m_storage;
    dspan m_span;
};

/// A device's prepared attention layout (the chunk table of kernels::attention_chunks), built
/// once per micro-batch and reused by every layer's forward and backward.
class attention_layout {
public:
    attention_layout() = default;
    virtual ~attention_layout() = default;
    attention_layout(const attention_layout&) = delete;
    attention_layout& operator=(const attention_layout&) = delete;
};

/// A point in a device's stream (an event on a GPU, the clock on the host), for timing.
using device_mark = std::uint32_t;

class compute_device {
public:
    compute_device() = default;
    virtual ~compute_device() = default;
    compute_device(const compute_device&) = delete;
    compute_device& operator=(const compute_device&) = delete;

    /// "host (float reference)", "cuda:0 NVIDIA H200 (attention: mma)".
    [[nodiscard]] virtual std::string name() const = 0;
    [[nodiscard]] virtual std::size_t element_bytes(dtype t) const noexcept = 0;
    /// The device's stream (a cudaStream_t; nullptr on the host).
    [[nodiscard]] virtual void* stream() const noexcept = 0;
    /// Makes this device the calling thread's current one (a GPU's ordinal; nothing on the
    /// host). Call it first on every thread that uses the device (an emulated rank's thread).
    virtual void make_current() {}

    // ---- memory and data movement -----------------------------------------------------------
    /// `count` elements of `type`, contents undefined.
    [[nodiscard]] virtual dbuffer alloc(dtype type, std::size_t count) = 0;
    virtual void zero(dspan dst) = 0;
    /// dst.count values of dst.type from host memory (not bf16: the host has no bf16 layout of
    /// the device's; convert() on the device instead). Returns once `host` may be reused.
    virtual void upload(dspan dst, const void* host) = 0;
    /// Waits for the stream, then copies src.count values (not bf16) to host memory.
    virtual void download(dspan src, void* host) = 0;
    /// Same type and count.
    virtual void copy(dspan dst, dspan src) = 0;
    /// `rows` rows of `cols` elements, strided (same type).
    virtual void copy_2d(dspan dst, index ld_dst, dspan src, index ld_src, index rows,
                         index cols) = 0;
    /// Floating types, same count, rounding to dst.type.
    virtual void convert(dspan dst, dspan src) = 0;
    /// acc (f32) += x (bf16 or f32), same count.
    virtual void accumulate(dspan acc, dspan x) = 0;
    /// out = a + b element-wise (bf16, same count; out may be a or b).
    virtual void add(dspan out, dspan a, dspan b) = 0;
    /// dst (f32) uniform in [low, high): a deterministic function of (seed, index) on this
    /// device (initial weights of models too large to initialize on the host).
    virtual void fill_uniform(dspan dst, std::uint64_t seed, double low, double high) = 0;
    /// param (f32) -= learning_rate * grad (f32): plain SGD on the master weights.
    virtual void sgd(dspan param, dspan grad, double learning_rate) = 0;
    /// Row t of dst (dst.count / width rows of `width` bf16 values) = the sum, in fp32, of the
    /// src rows sources[offsets[t] .. offsets[t + 1]) (zero when there are none): a gather with
    /// one source per row, the transposed scatter-add with several. offsets, sources: i64.
    virtual void gather_rows(dspan dst, index width, dspan offsets, dspan sources, dspan src) = 0;
    /// Grouped-query attention: query head h reads key/value head h / group. expand: dst head h
    /// (of kv_heads * group) = src head h / group; reduce: dst head g = the fp32 sum of src heads
    /// g * group .. g * group + group - 1. `rows` rows, head_dim values per head, bf16.
    virtual void expand_heads(dspan dst, index ld_dst, dspan src, index ld_src, index rows,
                              index kv_heads, index group, index head_dim) = 0;
    virtual void reduce_heads(dspan dst, index ld_dst, dspan src, index ld_src, index rows,
                              index kv_heads, index group, index head_dim) = 0;

    // ---- math (kernels/ops.hpp contracts) ---------------------------------------------------
    /// C[m x n] = alpha op(A) op(B) + beta C; A, B bf16; C bf16, or f32 (weight gradients
    /// accumulated in fp32 with beta = 1). fp32 accumulation.
    virtual void gemm(bool transpose_a, bool transpose_b, index m, index n, index k, double alpha,
                      dspan a, index lda, dspan b, index ldb, double beta, dspan c, index ldc) = 0;
    /// x, w, y bf16; rstd f32 (rows).
    virtual void rms_norm_forward(dspan x, dspan w, index rows, index cols, double eps, dspan y,
                                  dspan rstd) = 0;
    /// dx bf16 overwritten, dw f32 accumulated.
    virtual void rms_norm_backward(dspan x, dspan w, dspan rstd, dspan dy, index rows, index cols,
                                   dspan dx, dspan dw) = 0;
    /// positions: i64, one per row.
    virtual void rotary(dspan x, index rows, index heads, index head_dim, index ld, dspan positions,
                        double base, bool inverse) = 0;
    virtual void swiglu_forward(dspan gate, dspan up, dspan out) = 0;
    virtual void swiglu_backward(dspan gate, dspan up, dspan dout, dspan dgate, dspan dup) = 0;
    /// out[r] = table[ids[r]] (table bf16 vocab x cols, ids i32).
    virtual void embedding_forward(dspan table, dspan ids, index rows, index cols, dspan out) = 0;
    /// dtable (f32) [ids[r]] += dout[r].
    virtual void embedding_backward(dspan dout, dspan ids, index rows, index cols,
                                    dspan dtable) = 0;
    /// Softmax cross-entropy of bf16 logits against i32 labels (< 0: ignored): loss (f64, one
    /// value) += the sum over labelled rows; dlogits (bf16) = grad_scale * (softmax - onehot),
    /// zero on ignored rows.
    virtual void cross_entropy(dspan logits, dspan labels, index rows, index vocab,
                               double grad_scale, dspan dlogits, dspan loss) = 0;
    /// Validates and prepares `chunks` (copied: the spans may be released at return).
    [[nodiscard]] virtual std::unique_ptr<attention_layout>
    prepare_attention(const kernels::attention_chunks& chunks) = 0;
    /// out bf16, lse f32 (total_q x heads): kernels::attention_forward.
    virtual void attention_forward(const attention_layout& layout, dspan q, index ldq, dspan k,
                                   index ldk, dspan v, index ldv, dspan out, index ldo,
                                   dspan lse) = 0;
    /// dq, dk, dv overwritten: kernels::attention_backward.
    virtual void attention_backward(const attention_layout& layout, dspan q, index ldq, dspan k,
                                    index ldk, dspan v, index ldv, dspan out, index ldo, dspan dout,
                                    index lddo, dspan lse, dspan dq, index lddq, dspan dk,
                                    index lddk, dspan dv, index lddv) = 0;

    // ---- ordering and time ------------------------------------------------------------------
    /// Waits until everything queued so far has run.
    virtual void synchronize() = 0;
    /// A mark in the stream's order (the device's clock when the work before it has run).
    [[nodiscard]] virtual device_mark mark() = 0;
    /// Seconds from mark `a` to mark `b` (waits for b).
    [[nodiscard]] virtual double seconds_between(device_mark a, device_mark b) = 0;
    /// Forgets every mark (their storage is reused).
    virtual void release_marks() = 0;
};

} // namespace wlb::runtime
