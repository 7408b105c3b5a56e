// The CUDA compute device (runtime/device/cuda_device.hpp) over the kernels of
// kernels/cuda_ops.hpp.
#include "runtime/device/cuda_device.hpp"

#include "base/error.hpp"
#include "kernels/cuda_ops.hpp"
#include "kernels/device_query.hpp"

#include <cstdint>
#include <cuda_runtime_api.h>
#include <fmt/format.h>
#include <vector>

namespace wlb::runtime {

namespace kc = kernels::cuda;
using kernels::bf16;

namespace {

void expect_type(dspan s, dtype t, const char* what) {
    WLB_EXPECTS(s.type == t, "CUDA device: {} is {}, expected {}", what, dtype_name(s.type),
                dtype_name(t));
}

bf16* b16(dspan s, const char* what) {
    expect_type(s, dtype::bf16, what);
    return s.as<bf16>();
}

float* f32(dspan s, const char* what) {
    expect_type(s, dtype::f32, what);
    return s.as<float>();
}

/// The last element of a strided rows x cols matrix lies inside `s`.
void expect_matrix(dspan s, index rows, index cols, index ld, const char* what) {
    WLB_EXPECTS(rows >= 0 && cols >= 0 && ld >= cols, "CUDA device: {}: {} x {} with stride {}",
                what, rows, cols, ld);
    WLB_EXPECTS(rows == 0 || static_cast<std::size_t>((rows - 1) * ld + cols) <= s.count,
                "CUDA device: {}: {} x {} with stride {} exceeds its {} elements", what, rows, cols,
                ld, s.count);
}

struct cuda_layout final : attention_layout {
    explicit cuda_layout(kc::attention_plan p) : plan(std::move(p)) {}
    kc::attention_plan plan;
};

kc::attention_variant variant_of(attention_choice c) {
    switch (c) {
    case attention_choice::mma:
        return kc::attention_variant::mma;
    case attention_choice::simt:
        return kc::attention_variant::simt;
    case attention_choice::automatic:
    case attention_choice::cudnn:
        break;
    }
    return kc::attention_variant::automatic;
}

class cuda_device final : public compute_device {
public:
    explicit cuda_device(const cuda_device_options& o)
        : m_ordinal(o.device), m_choice(o.attention) {
        if (o.attention == attention_choice::cudnn)
            throw input_error("--attention cudnn: cuDNN's fused attention is not built into this "
                              "wlbtune yet (docs/cuda-runtime.md); use auto, mma or simt");
        const auto report = kernels::query_devices();
        if (o.device < 0 || o.device >= static_cast<int>(report.devices.size()))
            throw runtime_failure(report.devices.empty()
                                      ? report.reason
                                      : fmt::format("CUDA device {} requested, {} visible",
                                                    o.device, report.devices.size()));
        m_name = fmt::format("cuda:{} {}", o.device,
                             report.devices[static_cast<std::size_t>(o.device)].name);
        kc::set_device(o.device);
        m_stream = std::make_unique<kc::stream>();
        m_blas = std::make_unique<kc::blas_handle>();
        // Keep freed memory in the pool: the step allocates per micro-batch and layer.
        cudaMemPool_t pool = nullptr;
        WLB_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, o.device));
        std::uint64_t keep = UINT64_MAX;
        WLB_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep));
    }

    ~cuda_device() override {
        for (auto e : m_events)
            cudaEventDestroy(e);
    }

    std::string name() const override {
        return fmt::format("{} (attention: {})", m_name, to_string(m_choice));
    }
    std::size_t element_bytes(dtype t) const noexcept override {
        switch (t) {
        case dtype::bf16:
            return 2;
        case dtype::f32:
        case dtype::i32:
            return 4;
        case dtype::f64:
        case dtype::i64:
            return 8;
        }
        return 4;
    }
    void* stream() const noexcept override { return s(); }
    void make_current() override { kc::set_device(m_ordinal); }

    dbuffer alloc(dtype type, std::size_t count) override {
        const std::size_t bytes = count * element_bytes(type);
        void* p = nullptr;
        if (bytes > 0)
            WLB_CUDA_CHECK(cudaMallocAsync(&p, bytes, s()));
        kc::stream_t stream = s();
        std::shared_ptr<void> storage(p, [stream](void* q) {
            if (q != nullptr)
                cudaFreeAsync(q, stream); // never throws; a failure here has nowhere to go
        });
        return dbuffer(storage, {p, type, count, element_bytes(type)});
    }
    void zero(dspan dst) override { kc::fill_zero(dst.data, dst.bytes(), s()); }
    void upload(dspan dst, const void* host) override {
        WLB_EXPECTS(dst.type != dtype::bf16, "CUDA device: upload into bf16");
        kc::copy_to_device(dst.data, host, dst.bytes(), s());
    }
    void download(dspan src, void* host) override {
        WLB_EXPECTS(src.type != dtype::bf16, "CUDA device: download of bf16");
        kc::copy_to_host(host, src.data, src.bytes(), s());
    }
    void copy(dspan dst, dspan src) override {
        WLB_EXPECTS(dst.type == src.type && dst.count == src.count,
                    "CUDA device: copy of {} {} into {} {}", src.count, dtype_name(src.type),
                    dst.count, dtype_name(dst.type));
        kc::copy_device(dst.data, src.data, dst.bytes(), s());
    }
    void copy_2d(dspan dst, index ld_dst, dspan src, index ld_src, index rows,
                 index cols) override {
        WLB_EXPECTS(dst.type == src.type, "CUDA device: copy_2d of {} into {}",
                    dtype_name(src.type), dtype_name(dst.type));
        expect_matrix(dst, rows, cols, ld_dst, "copy_2d destination");
        expect_matrix(src, rows, cols, ld_src, "copy_2d source");
        const std::size_t e = dst.element_bytes;
        kc::copy_2d(dst.data, static_cast<std::size_t>(ld_dst) * e, src.data,
                    static_cast<std::size_t>(ld_src) * e, static_cast<std::size_t>(cols) * e,
                    static_cast<std::size_t>(rows), s());
    }
    void convert(dspan dst, dspan src) override {
        WLB_EXPECTS(dst.count == src.count, "CUDA device: convert of {} into {}", src.count,
                    dst.count);
        const auto n = static_cast<index>(dst.count);
        if (dst.type == src.type)
            copy(dst, src);
        else if (src.type == dtype::f32 && dst.type == dtype::bf16)
            kc::convert(src.as<float>(), n, dst.as<bf16>(), s());
        else if (src.type == dtype::bf16 && dst.type == dtype::f32)
            kc::convert(src.as<bf16>(), n, dst.as<float>(), s());
        else
            WLB_EXPECTS(false, "CUDA device: convert of {} into {}", dtype_name(src.type),
                        dtype_name(dst.type));
    }
    void accumulate(dspan acc, dspan x) override {
        WLB_EXPECTS(acc.count == x.count, "CUDA device: accumulate {} into {}", x.count, acc.count);
        const auto n = static_cast<index>(acc.count);
        if (x.type == dtype::bf16)
            kc::accumulate(f32(acc, "accumulate target"), x.as<bf16>(), n, s());
        else
            kc::accumulate(f32(acc, "accumulate target"), f32(x, "accumulate input"), n, s());
    }
    void add(dspan out, dspan a, dspan b) override {
        WLB_EXPECTS(out.count == a.count && out.count == b.count,
                    "CUDA device: add of {} + {} into {}", a.count, b.count, out.count);
        kc::add(b16(a, "add input"), b16(b, "add input"), static_cast<index>(out.count),
                b16(out, "add output"), s());
    }
    void fill_uniform(dspan dst, std::uint64_t seed, double low, double high) override {
        kc::fill_uniform(f32(dst, "fill_uniform target"), static_cast<index>(dst.count), seed,
                         static_cast<float>(low), static_cast<float>(high), s());
    }
    void sgd(dspan param, dspan grad, double learning_rate) override {
        WLB_EXPECTS(param.count == grad.count, "CUDA device: sgd of {} with {} gradients",
                    param.count, grad.count);
        kc::sgd(f32(param, "sgd parameter"), f32(grad, "sgd gradient"),
                static_cast<index>(param.count), static_cast<float>(learning_rate), s());
    }
    void gather_rows(dspan dst, index width, dspan offsets, dspan sources, dspan src) override {
        expect_type(offsets, dtype::i64, "gather_rows offsets");
        expect_type(sources, dtype::i64, "gather_rows sources");
        WLB_EXPECTS(width > 0 && dst.count % static_cast<std::size_t>(width) == 0,
                    "CUDA device: gather_rows of width {} into {} elements", width, dst.count);
        const index rows = static_cast<index>(dst.count) / width;
        WLB_EXPECTS(offsets.count == static_cast<std::size_t>(rows + 1),
                    "CUDA device: gather_rows: {} offsets for {} rows", offsets.count, rows);
        kc::gather_rows(b16(dst, "gather_rows destination"), rows, width,
                        offsets.as<std::int64_t>(), sources.as<std::int64_t>(),
                        b16(src, "gather_rows source"), s());
    }
    void expand_heads(dspan dst, index ld_dst, dspan src, index ld_src, index rows, index kv_heads,
                      index group, index head_dim) override {
        expect_matrix(dst, rows, kv_heads * group * head_dim, ld_dst, "expand_heads output");
        expect_matrix(src, rows, kv_heads * head_dim, ld_src, "expand_heads input");
        kc::expand_heads(b16(dst, "expand_heads output"), ld_dst, b16(src, "expand_heads input"),
                         ld_src, rows, kv_heads, group, head_dim, s());
    }
    void reduce_heads(dspan dst, index ld_dst, dspan src, index ld_src, index rows, index kv_heads,
                      index group, index head_dim) override {
        expect_matrix(dst, rows, kv_heads * head_dim, ld_dst, "reduce_heads output");
        expect_matrix(src, rows, kv_heads * group * head_dim, ld_src, "reduce_heads input");
        kc::reduce_heads(b16(dst, "reduce_heads output"), ld_dst, b16(src, "reduce_heads input"),
                         ld_src, rows, kv_heads, group, head_dim, s());
    }

    void gemm(bool ta, bool tb, index m, index n, index k, double alpha, dspan a, index lda,
              dspan b, index ldb, double beta, dspan c, index ldc) override {
        expect_matrix(a, ta ? k : m, ta ? m : k, lda, "gemm A");
        expect_matrix(b, tb ? n : k, tb ? k : n, ldb, "gemm B");
        expect_matrix(c, m, n, ldc, "gemm C");
        const auto al = static_cast<float>(alpha), be = static_cast<float>(beta);
        if (c.type == dtype::f32)
            kc::gemm(*m_blas, ta, tb, m, n, k, al, b16(a, "gemm A"), lda, b16(b, "gemm B"), ldb, be,
                     c.as<float>(), ldc, s());
        else
            kc::gemm(*m_blas, ta, tb, m, n, k, al, b16(a, "gemm A"), lda, b16(b, "gemm B"), ldb, be,
                     b16(c, "gemm C"), ldc, s());
    }
    void rms_norm_forward(dspan x, dspan w, index rows, index cols, double eps, dspan y,
                          dspan rstd) override {
        expect_matrix(x, rows, cols, cols, "rms_norm input");
        expect_matrix(y, rows, cols, cols, "rms_norm output");
        WLB_EXPECTS(w.count >= static_cast<std::size_t>(cols) &&
                        rstd.count >= static_cast<std::size_t>(rows),
                    "CUDA device: rms_norm weight or rstd too short");
        kc::rms_norm_forward(b16(x, "x"), b16(w, "w"), rows, cols, static_cast<float>(eps),
                             b16(y, "y"), f32(rstd, "rstd"), s());
    }
    void rms_norm_backward(dspan x, dspan w, dspan rstd, dspan dy, index rows, index cols, dspan dx,
                           dspan dw) override {
        expect_matrix(x, rows, cols, cols, "rms_norm input");
        expect_matrix(dy, rows, cols, cols, "rms_norm output gradient");
        expect_matrix(dx, rows, cols, cols, "rms_norm input gradient");
        kc::rms_norm_backward(b16(x, "x"), b16(w, "w"), f32(rstd, "rstd"), b16(dy, "dy"), rows,
                              cols, b16(dx, "dx"), f32(dw, "dw"), s());
    }
    void rotary(dspan x, index rows, index heads, index head_dim, index ld, dspan positions,
                double base, bool inverse) override {
        expect_matrix(x, rows, heads * head_dim, ld, "rotary input");
        expect_type(positions, dtype::i64, "rotary positions");
        WLB_EXPECTS(positions.count >= static_cast<std::size_t>(rows),
                    "CUDA device: {} positions for {} rows", positions.count, rows);
        kc::rotary(b16(x, "x"), rows, heads, head_dim, ld, positions.as<index>(), base, inverse,
                   s());
    }
    void swiglu_forward(dspan gate, dspan up, dspan out) override {
        WLB_EXPECTS(gate.count == up.count && gate.count == out.count, "CUDA device: swiglu sizes");
        kc::swiglu_forward(b16(gate, "gate"), b16(up, "up"), static_cast<index>(gate.count),
                           b16(out, "out"), s());
    }
    void swiglu_backward(dspan gate, dspan up, dspan dout, dspan dgate, dspan dup) override {
        WLB_EXPECTS(gate.count == up.count && gate.count == dout.count &&
                        gate.count == dgate.count && gate.count == dup.count,
                    "CUDA device: swiglu backward sizes");
        kc::swiglu_backward(b16(gate, "gate"), b16(up, "up"), b16(dout, "dout"),
                            static_cast<index>(gate.count), b16(dgate, "dgate"), b16(dup, "dup"),
                            s());
    }
    void embedding_forward(dspan table, dspan ids, index rows, index cols, dspan out) override {
        expect_type(ids, dtype::i32, "embedding ids");
        expect_matrix(out, rows, cols, cols, "embedding output");
        kc::embedding_forward(b16(table, "table"), ids.as<std::int32_t>(), rows, cols,
                              b16(out, "out"), s());
    }
    void embedding_backward(dspan dout, dspan ids, index rows, index cols, dspan dtable) override {
        expect_type(ids, dtype::i32, "embedding ids");
        expect_matrix(dout, rows, cols, cols, "embedding output gradient");
        kc::embedding_backward(b16(dout, "dout"), ids.as<std::int32_t>(), rows, cols,
                               f32(dtable, "dtable"), s());
    }
    void cross_entropy(dspan logits, dspan labels, index rows, index vocab, double grad_scale,
                       dspan dlogits, dspan loss) override {
        expect_type(labels, dtype::i32, "cross-entropy labels");
        expect_type(loss, dtype::f64, "cross-entropy loss");
        expect_matrix(logits, rows, vocab, vocab, "logits");
        expect_matrix(dlogits, rows, vocab, vocab, "logit gradients");
        kc::cross_entropy(b16(logits, "logits"), labels.as<std::int32_t>(), rows, vocab,
                          static_cast<float>(grad_scale), b16(dlogits, "dlogits"),
                          loss.as<double>(), s());
    }
    std::unique_ptr<attention_layout>
    prepare_attention(const kernels::attention_chunks& chunks) override {
        return std::make_unique<cuda_layout>(kc::attention_plan(chunks, variant_of(m_choice), s()));
    }
    void attention_forward(const attention_layout& layout, dspan q, index ldq, dspan k, index ldk,
                           dspan v, index ldv, dspan out, index ldo, dspan lse) override {
        const auto& plan = dynamic_cast<const cuda_layout&>(layout).plan;
        const index width = plan.heads() * plan.head_dim();
        expect_matrix(q, plan.tiling().total_q, width, ldq, "attention q");
        expect_matrix(k, plan.tiling().total_k, width, ldk, "attention k");
        expect_matrix(v, plan.tiling().total_k, width, ldv, "attention v");
        expect_matrix(out, plan.tiling().total_q, width, ldo, "attention out");
        kc::attention_forward(plan, b16(q, "q"), ldq, b16(k, "k"), ldk, b16(v, "v"), ldv,
                              b16(out, "out"), ldo, f32(lse, "lse"), s());
    }
    void attention_backward(const attention_layout& layout, dspan q, index ldq, dspan k, index ldk,
                            dspan v, index ldv, dspan out, index ldo, dspan dout, index lddo,
                            dspan lse, dspan dq, index lddq, dspan dk, index lddk, dspan dv,
                            index lddv) override {
        const auto& plan = dynamic_cast<const cuda_layout&>(layout).plan;
        const index width = plan.heads() * plan.head_dim();
        expect_matrix(dq, plan.tiling().total_q, width, lddq, "attention dq");
        expect_matrix(dk, plan.tiling().total_k, width, lddk, "attention dk");
        expect_matrix(dv, plan.tiling().total_k, width, lddv, "attention dv");
        kc::attention_backward(plan, b16(q, "q"), ldq, b16(k, "k"), ldk, b16(v, "v"), ldv,
                               b16(out, "out"), ldo, b16(dout, "dout"), lddo, f32(lse, "lse"),
                               b16(dq, "dq"), lddq, b16(dk, "dk"), lddk, b16(dv, "dv"), lddv,
                               m_workspace, s());
    }

    void synchronize() override { kc::synchronize(s()); }
    device_mark mark() override {
        if (m_next == m_events.size()) {
            cudaEvent_t e = nullptr;
            WLB_CUDA_CHECK(cudaEventCreate(&e));
            m_events.push_back(e);
        }
        WLB_CUDA_CHECK(cudaEventRecord(m_events[m_next], s()));
        return static_cast<device_mark>(m_next++);
    }
    double seconds_between(device_mark a, device_mark b) override {
        WLB_EXPECTS(a < m_next && b < m_next, "CUDA device: mark {} or {} of {}", a, b, m_next);
        WLB_CUDA_CHECK(cudaEventSynchronize(m_events[b]));
        float ms = 0;
        WLB_CUDA_CHECK(cudaEventElapsedTime(&ms, m_events[a], m_events[b]));
        return static_cast<double>(ms) * 1e-3;
    }
    void release_marks() override { m_next = 0; }

private:
    kc::stream_t s() const noexcept { return m_stream->get(); }

    int m_ordinal;
    attention_choice m_choice;
    std::string m_name;
    std::unique_ptr<kc::stream> m_stream;
    std::unique_ptr<kc::blas_handle> m_blas;
    kc::attention_workspace m_workspace;
    std::vector<cudaEvent_t> m_events;
    std::size_t m_next = 0;
};

} // namespace

std::string cuda_device_unavailable_reason() {
    const auto report = kernels::query_devices();
    if (!report.devices.empty())
        return {};
    return report.reason;
}

int cuda_device_count() noexcept {
    try {
        return static_cast<int>(kernels::query_devices().devices.size());
    } catch (...) {
        return 0;
    }
}

std::unique_ptr<compute_device> make_cuda_device(const cuda_device_options& options) {
    return std::make_unique<cuda_device>(options);
}

} // namespace wlb::runtime
