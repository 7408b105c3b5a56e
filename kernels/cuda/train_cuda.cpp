// Host side of the training step's small kernels (kernels/cuda_ops.hpp): argument checks, checked
// launches of kernels/train_kernels.cu, and the stream-ordered device copies.
#include "base/error.hpp"
#include "kernels/cuda_ops.hpp"
#include "kernels/train_kernels.hpp"

#include <cuda_runtime_api.h>

namespace wlb::kernels::cuda {

namespace {

void check(int status) {
    WLB_CUDA_CHECK(static_cast<cudaError_t>(status));
}

void expect_count(index n, const char* what) {
    WLB_EXPECTS(n >= 0, "{} of {} values", what, n);
}

} // namespace

void copy_device(void* dst, const void* src, std::size_t bytes, stream_t stream) {
    if (bytes > 0)
        WLB_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream));
}

void copy_2d(void* dst, std::size_t dst_pitch, const void* src, std::size_t src_pitch,
             std::size_t row_bytes, std::size_t rows, stream_t stream) {
    WLB_EXPECTS(row_bytes <= dst_pitch && row_bytes <= src_pitch,
                "copy_2d of {}-byte rows with pitches {} and {}", row_bytes, dst_pitch, src_pitch);
    if (rows > 0 && row_bytes > 0)
        WLB_CUDA_CHECK(cudaMemcpy2DAsync(dst, dst_pitch, src, src_pitch, row_bytes, rows,
                                         cudaMemcpyDeviceToDevice, stream));
}

void embedding_forward(const bf16* table, const std::int32_t* ids, index rows, index cols,
                       bf16* out, stream_t stream) {
    WLB_EXPECTS(rows >= 0 && cols > 0, "embedding of {} x {}", rows, cols);
    check(cuda_detail::embedding_forward(table, ids, rows, cols, out, stream));
}

void embedding_backward(const bf16* dout, const std::int32_t* ids, index rows, index cols,
                        float* dtable, stream_t stream) {
    WLB_EXPECTS(rows >= 0 && cols > 0, "embedding backward of {} x {}", rows, cols);
    check(cuda_detail::embedding_backward(dout, ids, rows, cols, dtable, stream));
}

void cross_entropy(const bf16* logits, const std::int32_t* labels, index rows, index vocab,
                   float grad_scale, bf16* dlogits, double* loss, stream_t stream) {
    WLB_EXPECTS(rows >= 0 && vocab > 0, "cross-entropy of {} x {}", rows, vocab);
    WLB_EXPECTS(rows <= 0x7fffffffLL, "cross-entropy of {} rows exceeds the grid", rows);
    check(
        cuda_detail::cross_entropy(logits, labels, rows, vocab, grad_scale, dlogits, loss, stream));
}

void add(const bf16* a, const bf16* b, index n, bf16* out, stream_t stream) {
    expect_count(n, "add");
    check(cuda_detail::add(a, b, n, out, stream));
}

void accumulate(float* acc, const bf16* x, index n, stream_t stream) {
    expect_count(n, "accumulate");
    check(cuda_detail::accumulate_bf16(acc, x, n, stream));
}

void accumulate(float* acc, const float* x, index n, stream_t stream) {
    expect_count(n, "accumulate");
    check(cuda_detail::accumulate_f32(acc, x, n, stream));
}

void convert(const float* src, index n, bf16* dst, stream_t stream) {
    expect_count(n, "convert");
    check(cuda_detail::f32_to_bf16(src, n, dst, stream));
}

void convert(const bf16* src, index n, float* dst, stream_t stream) {
    expect_count(n, "convert");
    check(cuda_detail::bf16_to_f32(src, n, dst, stream));
}

void sgd(float* param, const float* grad, index n, float learning_rate, stream_t stream) {
    expect_count(n, "sgd");
    check(cuda_detail::sgd(param, grad, n, learning_rate, stream));
}

void fill_uniform(float* x, index n, std::uint64_t seed, float low, float high, stream_t stream) {
    expect_count(n, "fill_uniform");
    check(cuda_detail::fill_uniform_f32(x, n, seed, low, high, stream));
}

void gather_rows(bf16* dst, index rows, index width, const std::int64_t* offsets,
                 const std::int64_t* sources, const bf16* src, stream_t stream) {
    WLB_EXPECTS(rows >= 0 && width > 0 && rows <= 0x7fffffffLL, "gather_rows of {} x {}", rows,
                width);
    check(cuda_detail::gather_rows(dst, rows, width, offsets, sources, src, stream));
}

void expand_heads(bf16* dst, index ld_dst, const bf16* src, index ld_src, index rows,
                  index kv_heads, index group, index head_dim, stream_t stream) {
    WLB_EXPECTS(rows >= 0 && kv_heads > 0 && group > 0 && head_dim > 0 &&
                    ld_dst >= kv_heads * group * head_dim && ld_src >= kv_heads * head_dim,
                "expand_heads of {} rows, {} x {} heads of {}, strides {} and {}", rows, kv_heads,
                group, head_dim, ld_dst, ld_src);
    check(cuda_detail::expand_heads(dst, ld_dst, src, ld_src, rows, kv_heads, group, head_dim,
                                    stream));
}

void reduce_heads(bf16* dst, index ld_dst, const bf16* src, index ld_src, index rows,
                  index kv_heads, index group, index head_dim, stream_t stream) {
    WLB_EXPECTS(rows >= 0 && kv_heads > 0 && group > 0 && head_dim > 0 &&
                    ld_dst >= kv_heads * head_dim && ld_src >= kv_heads * group * head_dim,
                "reduce_heads of {} rows, {} x {} heads of {}, strides {} and {}", rows, kv_heads,
                group, head_dim, ld_dst, ld_src);
    check(cuda_detail::reduce_heads(dst, ld_dst, src, ld_src, rows, kv_heads, group, head_dim,
                                    stream));
}

} // namespace wlb::kernels::cuda
