// The host interface of the CUDA kernels (design.md section 3: CUDA at the edges). The same
// operations as the CPU kernels of kernels/ops.hpp, on device pointers, bf16 activations with fp32
// accumulation, asynchronous on a stream. Includes no CUDA header: a stream is the CUDA runtime's
// opaque CUstream_st pointer (cudaStream_t) and bf16 is kernels/bf16.hpp. Defined in the wlb::cuda
// target when the build has CUDA (kernels/cuda/*.cpp and kernels/*.cu); a build without CUDA has
// none of these symbols, so only CUDA-only code (tests/gpu, bench_cuda_*, runtime/*/cuda/) uses it.
//
// Errors: CUDA and cuBLAS failures throw wlb::runtime_failure naming the call, file and line;
// broken preconditions (shapes, strides, a variant that cannot run) throw wlb::internal_error.
#pragma once

#include "base/error.hpp"
#include "kernels/attention_tiles.hpp"
#include "kernels/bf16.hpp"
#include "kernels/ops.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

struct CUstream_st;

namespace wlb::kernels::cuda {

/// cudaStream_t; nullptr is the legacy default stream.
using stream_t = CUstream_st*;

// ---- Devices, memory, streams, timing (kernels/cuda/device_memory.cpp) -----------------------

/// Makes `device` current for the calling thread.
void set_device(int device);
/// Waits for everything queued on the device.
void synchronize_device();
void synchronize(stream_t stream);

/// Owns device memory from cudaMalloc (freed in the destructor, which never throws).
class device_buffer {
public:
    device_buffer() = default;
    explicit device_buffer(std::size_t bytes);
    ~device_buffer();
    device_buffer(device_buffer&& other) noexcept;
    device_buffer& operator=(device_buffer&& other) noexcept;
    device_buffer(const device_buffer&) = delete;
    device_buffer& operator=(const device_buffer&) = delete;

    [[nodiscard]] void* data() const noexcept { return m_data; }
    [[nodiscard]] std::size_t bytes() const noexcept { return m_bytes; }
    template <typename T>
    [[nodiscard]] T* as() const noexcept {
        return static_cast<T*>(m_data);
    }
    /// Makes the buffer at least `bytes` long; the contents are lost when it grows.
    void reserve_discard(std::size_t bytes);

private:
    void* m_data = nullptr;
    std::size_t m_bytes = 0;
};

/// Copies in the order of `stream`, the stream that uses the data (nullptr: the legacy default
/// stream, which does not order against non-blocking streams). copy_to_device runs after the
/// work queued on `stream` before it and before the work queued after it; it returns once
/// `host_src` may be reused (pageable memory is staged by the CUDA runtime), the copy itself
/// possibly still pending. copy_to_host waits for the work queued on `stream` and for the copy.
void copy_to_device(void* device_dst, const void* host_src, std::size_t bytes, stream_t stream);
void copy_to_host(void* host_dst, const void* device_src, std::size_t bytes, stream_t stream);
/// Asynchronous zero fill on `stream`.
void fill_zero(void* device_dst, std::size_t bytes, stream_t stream);

/// A typed device array filled from and read back to host vectors, each copy in the order of
/// the stream given (see copy_to_device): pass the stream the kernels using the data run on.
template <typename T>
class device_array {
public:
    device_array() = default;
    explicit device_array(std::size_t count) : m_buffer(count * sizeof(T)), m_count(count) {}
    explicit device_array(std::span<const T> host, stream_t stream = nullptr)
        : device_array(host.size()) {
        upload(host, stream);
    }

    [[nodiscard]] T* data() const noexcept { return m_buffer.as<T>(); }
    [[nodiscard]] std::size_t size() const noexcept { return m_count; }
    void upload(std::span<const T> host, stream_t stream = nullptr) {
        WLB_EXPECTS(host.size() == m_count, "upload of {} values into {}", host.size(), m_count);
        copy_to_device(m_buffer.data(), host.data(), m_count * sizeof(T), stream);
    }
    [[nodiscard]] std::vector<T> download(stream_t stream = nullptr) const {
        std::vector<T> host(m_count);
        copy_to_host(host.data(), m_buffer.data(), m_count * sizeof(T), stream);
        return host;
    }

private:
    device_buffer m_buffer;
    std::size_t m_count = 0;
};

/// A non-blocking stream of the current device (destroyed in the destructor).
class stream {
public:
    stream();
    ~stream();
    stream(const stream&) = delete;
    stream& operator=(const stream&) = delete;
    [[nodiscard]] stream_t get() const noexcept { return m_stream; }

private:
    stream_t m_stream = nullptr;
};

/// Elapsed device time between two events recorded on a stream.
class event_timer {
public:
    event_timer();
    ~event_timer();
    event_timer(const event_timer&) = delete;
    event_timer& operator=(const event_timer&) = delete;
    void start(stream_t stream);
    void stop(stream_t stream);
    /// Waits for the stop event; seconds between start and stop.
    [[nodiscard]] double seconds() const;

private:
    struct impl;
    std::unique_ptr<impl> m_impl;
};

// ---- Attention over variable-length chunks (kernels/cuda/attention_cuda.cpp) -----------------

/// mma: tensor cores (head_dim 64 or 128, 16-byte aligned rows, sm_80+), the fast path.
/// simt: scalar fp32, any head_dim up to 256 and any alignment.
/// automatic: mma where it can run, simt otherwise.
enum class attention_variant { automatic, mma, simt };
[[nodiscard]] std::string_view to_string(attention_variant v) noexcept;

/// The device-side description of an attention_chunks (tiles, chunk table), uploaded once and
/// reused by every call with the same chunks: a step builds one per micro-batch and layer shape.
/// The upload is queued on the stream given to the constructor and marked with an event; every
/// call, on whatever stream, first makes its stream wait for that event, so no kernel reads the
/// tables before they have landed and the host does not wait for the upload.
class attention_plan {
public:
    /// Validates `chunks` (attention_chunks::validate) and queues the upload of its tiling on
    /// `stream` (after the work queued there; `chunks` may be released at return).
    explicit attention_plan(const attention_chunks& chunks,
                            attention_variant variant = attention_variant::automatic,
                            stream_t stream = nullptr);
    ~attention_plan();
    attention_plan(attention_plan&&) noexcept;
    attention_plan& operator=(attention_plan&&) noexcept;

    [[nodiscard]] const attention_tiling& tiling() const noexcept;
    [[nodiscard]] index heads() const noexcept;
    [[nodiscard]] index head_dim() const noexcept;
    [[nodiscard]] double scale() const noexcept;
    [[nodiscard]] attention_variant requested() const noexcept;
    /// The variant a call takes for these pointers (q, k, v, out, ...) and row strides: the
    /// requested one, or for automatic mma when head_dim is 64 or 128 and every pointer is
    /// 16-byte aligned and every stride a multiple of 8. Throws wlb::internal_error when the
    /// requested variant cannot run them.
    [[nodiscard]] attention_variant resolve(std::span<const void* const> pointers,
                                            std::span<const index> strides) const;
    /// Forward FLOPs (design.md convention: 4 * causal pairs * heads * head_dim; backward is
    /// 2.5 x this).
    [[nodiscard]] double forward_flops() const noexcept;

    struct impl;
    [[nodiscard]] const impl& internals() const noexcept { return *m_impl; }

private:
    std::unique_ptr<impl> m_impl;
};

/// Scratch of the backward pass (delta, the fp32 dQ accumulator); grows on demand. One per
/// stream that runs backward passes concurrently.
class attention_workspace {
public:
    [[nodiscard]] float* delta(std::size_t count);
    [[nodiscard]] float* dq_accum(std::size_t count);

private:
    device_buffer m_delta;
    device_buffer m_dq_accum;
};

/// out (total_q rows, stride ldo) and lse (total_q x heads, fp32, natural log) from q, k, v
/// (bf16, row-major, heads * head_dim columns): the contract of kernels::attention_forward.
void attention_forward(const attention_plan& plan, const bf16* q, index ldq, const bf16* k,
                       index ldk, const bf16* v, index ldv, bf16* out, index ldo, float* lse,
                       stream_t stream = nullptr);

/// dq, dk, dv overwritten (the contract of kernels::attention_backward).
void attention_backward(const attention_plan& plan, const bf16* q, index ldq, const bf16* k,
                        index ldk, const bf16* v, index ldv, const bf16* out, index ldo,
                        const bf16* dout, index lddo, const float* lse, bf16* dq, index lddq,
                        bf16* dk, index lddk, bf16* dv, index lddv, attention_workspace& workspace,
                        stream_t stream = nullptr);

// ---- Element-wise (kernels/cuda/elementwise_cuda.cpp) -----------------------------------------

void rms_norm_forward(const bf16* x, const bf16* weight, index rows, index cols, float eps, bf16* y,
                      float* rstd, stream_t stream = nullptr);
/// dx overwritten, dweight (fp32) accumulated.
void rms_norm_backward(const bf16* x, const bf16* weight, const float* rstd, const bf16* dy,
                       index rows, index cols, bf16* dx, float* dweight, stream_t stream = nullptr);
void swiglu_forward(const bf16* gate, const bf16* up, index n, bf16* out,
                    stream_t stream = nullptr);
void swiglu_backward(const bf16* gate, const bf16* up, const bf16* dout, index n, bf16* dgate,
                     bf16* dup, stream_t stream = nullptr);
/// positions: a device array of `rows` document positions.
void rotary(bf16* x, index rows, index heads, index head_dim, index ld, const index* positions,
            double base, bool inverse, stream_t stream = nullptr);

/// x[i] uniform in [-scale, scale), a deterministic function of (seed, i): inputs of benchmarks
/// and of the single-GPU emulation, generated on the device.
void fill_random(bf16* x, index n, std::uint64_t seed, float scale, stream_t stream = nullptr);

// ---- GEMM through cuBLAS (kernels/cuda/gemm_cublas.cpp) --------------------------------------

/// A cuBLAS handle of the current device.
class blas_handle {
public:
    blas_handle();
    ~blas_handle();
    blas_handle(const blas_handle&) = delete;
    blas_handle& operator=(const blas_handle&) = delete;
    struct impl;
    [[nodiscard]] impl& internals() noexcept { return *m_impl; }

private:
    std::unique_ptr<impl> m_impl;
};

/// C[m x n] = alpha op(A) op(B) + beta C, row-major as kernels::gemm; bf16 storage with fp32
/// accumulation (cublasGemmEx, CUBLAS_COMPUTE_32F).
void gemm(blas_handle& blas, bool transpose_a, bool transpose_b, index m, index n, index k,
          float alpha, const bf16* a, index lda, const bf16* b, index ldb, float beta, bf16* c,
          index ldc, stream_t stream = nullptr);
/// bf16 A and B, fp32 C (weight gradients accumulated in fp32 with beta = 1).
void gemm(blas_handle& blas, bool transpose_a, bool transpose_b, index m, index n, index k,
          float alpha, const bf16* a, index lda, const bf16* b, index ldb, float beta, float* c,
          index ldc, stream_t stream = nullptr);
/// The same in fp32 storage and arithmetic (no TF32).
void gemm(blas_handle& blas, bool transpose_a, bool transpose_b, index m, index n, index k,
          float alpha, const float* a, index lda, const float* b, index ldb, float beta, float* c,
          index ldc, stream_t stream = nullptr);

// ---- The training step's small kernels (kernels/cuda/train_cuda.cpp) -------------------------
// The contracts of runtime/device/compute_device.hpp, asynchronous on `stream`.

/// Device-to-device copies in the stream's order: `bytes`, or `rows` rows of `row_bytes` with
/// pitches in bytes.
void copy_device(void* dst, const void* src, std::size_t bytes, stream_t stream);
void copy_2d(void* dst, std::size_t dst_pitch, const void* src, std::size_t src_pitch,
             std::size_t row_bytes, std::size_t rows, stream_t stream);
/// out[r] = table[ids[r]] (cols values each).
void embedding_forward(const bf16* table, const std::int32_t* ids, index rows, index cols,
                       bf16* out, stream_t stream);
/// dtable[ids[r]] += dout[r] (fp32 atomics).
void embedding_backward(const bf16* dout, const std::int32_t* ids, index rows, index cols,
                        float* dtable, stream_t stream);
/// *loss += sum over rows with label >= 0 of -log softmax(logits)[label]; dlogits = grad_scale
/// * (softmax - onehot), zero for rows with label < 0.
void cross_entropy(const bf16* logits, const std::int32_t* labels, index rows, index vocab,
                   float grad_scale, bf16* dlogits, double* loss, stream_t stream);
/// out = a + b (fp32 sum, rounded once; out may be a or b).
void add(const bf16* a, const bf16* b, index n, bf16* out, stream_t stream);
void accumulate(float* acc, const bf16* x, index n, stream_t stream);
void accumulate(float* acc, const float* x, index n, stream_t stream);
void convert(const float* src, index n, bf16* dst, stream_t stream);
void convert(const bf16* src, index n, float* dst, stream_t stream);
/// param -= learning_rate * grad.
void sgd(float* param, const float* grad, index n, float learning_rate, stream_t stream);
/// x uniform in [low, high), a deterministic function of (seed, index).
void fill_uniform(float* x, index n, std::uint64_t seed, float low, float high, stream_t stream);
/// dst row t (width values) = the fp32 sum of src rows sources[offsets[t] .. offsets[t + 1]).
void gather_rows(bf16* dst, index rows, index width, const std::int64_t* offsets,
                 const std::int64_t* sources, const bf16* src, stream_t stream);
/// Grouped-query attention: dst head h = src head h / group (kv_heads * group heads out);
/// reduce_heads: dst head g = the fp32 sum of src heads g * group .. + group - 1.
void expand_heads(bf16* dst, index ld_dst, const bf16* src, index ld_src, index rows,
                  index kv_heads, index group, index head_dim, stream_t stream);
void reduce_heads(bf16* dst, index ld_dst, const bf16* src, index ld_src, index rows,
                  index kv_heads, index group, index head_dim, stream_t stream);

} // namespace wlb::kernels::cuda
