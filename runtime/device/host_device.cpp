#include "runtime/device/host_device.hpp"

#include "base/error.hpp"
#include "kernels/ops.hpp"

#include <chrono>
#include <cstring>
#include <random>
#include <vector>

namespace wlb::runtime {
namespace {

void expect_type(dspan s, dtype t, const char* what) {
    WLB_EXPECTS(s.type == t, "host device: {} is {}, expected {}", what, dtype_name(s.type),
                dtype_name(t));
}

void expect_float(dspan s, const char* what) {
    WLB_EXPECTS(s.type == dtype::bf16 || s.type == dtype::f32,
                "host device: {} is {}, expected "
                "bf16 or f32",
                what, dtype_name(s.type));
}

/// The float storage of a bf16 or f32 range.
float* f(dspan s, const char* what) {
    expect_float(s, what);
    return s.as<float>();
}

/// Row `rows` - 1 of a matrix of `cols` columns with stride `ld` ends inside `s`.
void expect_matrix(dspan s, index rows, index cols, index ld, const char* what) {
    WLB_EXPECTS(rows >= 0 && cols >= 0 && ld >= cols, "host device: {}: {} x {} with stride {}",
                what, rows, cols, ld);
    WLB_EXPECTS(rows == 0 || static_cast<std::size_t>((rows - 1) * ld + cols) <= s.count,
                "host device: {}: {} x {} with stride {} exceeds its {} elements", what, rows, cols,
                ld, s.count);
}

struct host_layout final : attention_layout {
    std::vector<index> cu_q, cu_k, offsets;
    kernels::attention_chunks chunks() const {
        return {cu_q, cu_k, offsets, heads, head_dim, scale};
    }
    index heads = 1, head_dim = 1;
    double scale = 1.0;
};

class host_device final : public compute_device {
public:
    std::string name() const override { return "host (float reference)"; }
    std::size_t element_bytes(dtype t) const noexcept override {
        return t == dtype::f64 || t == dtype::i64 ? 8 : 4;
    }
    void* stream() const noexcept override { return nullptr; }

    dbuffer alloc(dtype type, std::size_t count) override {
        const std::size_t bytes = count * element_bytes(type);
        // double-aligned storage for every type
        std::shared_ptr<void> storage(new double[(bytes + 7) / 8 + 1](),
                                      [](void* p) { delete[] static_cast<double*>(p); });
        return dbuffer(storage, {storage.get(), type, count, element_bytes(type)});
    }
    void zero(dspan dst) override { std::memset(dst.data, 0, dst.bytes()); }
    void upload(dspan dst, const void* host) override {
        WLB_EXPECTS(dst.type != dtype::bf16, "host device: upload into bf16");
        std::memcpy(dst.data, host, dst.bytes());
    }
    void download(dspan src, void* host) override {
        WLB_EXPECTS(src.type != dtype::bf16, "host device: download of bf16");
        std::memcpy(host, src.data, src.bytes());
    }
    void copy(dspan dst, dspan src) override {
        WLB_EXPECTS(dst.type == src.type && dst.count == src.count,
                    "host device: copy of {} {} into {} {}", src.count, dtype_name(src.type),
                    dst.count, dtype_name(dst.type));
        std::memmove(dst.data, src.data, dst.bytes());
    }
    void copy_2d(dspan dst, index ld_dst, dspan src, index ld_src, index rows,
                 index cols) override {
        WLB_EXPECTS(dst.type == src.type, "host device: copy_2d of {} into {}",
                    dtype_name(src.type), dtype_name(dst.type));
        expect_matrix(dst, rows, cols, ld_dst, "copy_2d destination");
        expect_matrix(src, rows, cols, ld_src, "copy_2d source");
        const std::size_t e = dst.element_bytes;
        for (index r = 0; r < rows; ++r)
            std::memmove(static_cast<char*>(dst.data) + static_cast<std::size_t>(r * ld_dst) * e,
                         static_cast<const char*>(src.data) +
                             static_cast<std::size_t>(r * ld_src) * e,
                         static_cast<std::size_t>(cols) * e);
    }
    void convert(dspan dst, dspan src) override {
        WLB_EXPECTS(is_floating(dst.type) && is_floating(src.type) && dst.count == src.count,
                    "host device: convert of {} {} into {} {}", src.count, dtype_name(src.type),
                    dst.count, dtype_name(dst.type));
        for (std::size_t i = 0; i < dst.count; ++i)
            put(dst, i, get(src, i));
    }
    void accumulate(dspan acc, dspan x) override {
        expect_type(acc, dtype::f32, "accumulate target");
        WLB_EXPECTS(acc.count == x.count, "host device: accumulate {} into {}", x.count, acc.count);
        float* a = acc.as<float>();
        for (std::size_t i = 0; i < acc.count; ++i)
            a[i] = static_cast<float>(a[i] + get(x, i));
    }
    void add(dspan out, dspan a, dspan b) override {
        WLB_EXPECTS(out.count == a.count && out.count == b.count,
                    "host device: add of {} + {} "
                    "into {}",
                    a.count, b.count, out.count);
        float* o = f(out, "add output");
        const float* x = f(a, "add input");
        const float* y = f(b, "add input");
        for (std::size_t i = 0; i < out.count; ++i)
            o[i] = x[i] + y[i];
    }
    void fill_uniform(dspan dst, std::uint64_t seed, double low, double high) override {
        expect_type(dst, dtype::f32, "fill_uniform target");
        std::mt19937_64 rng(seed);
        std::uniform_real_distribution<double> dist(low, high);
        for (std::size_t i = 0; i < dst.count; ++i)
            dst.as<float>()[i] = static_cast<float>(dist(rng));
    }
    void sgd(dspan param, dspan grad, double learning_rate) override {
        expect_type(param, dtype::f32, "sgd parameter");
        expect_type(grad, dtype::f32, "sgd gradient");
        WLB_EXPECTS(param.count == grad.count, "host device: sgd of {} with {} gradients",
                    param.count, grad.count);
        float* p = param.as<float>();
        const float* g = grad.as<float>();
        for (std::size_t i = 0; i < param.count; ++i)
            p[i] -= static_cast<float>(learning_rate * static_cast<double>(g[i]));
    }
    void gather_rows(dspan dst, index width, dspan offsets, dspan sources, dspan src) override {
        expect_type(offsets, dtype::i64, "gather_rows offsets");
        expect_type(sources, dtype::i64, "gather_rows sources");
        WLB_EXPECTS(width > 0 && dst.count % static_cast<std::size_t>(width) == 0 &&
                        src.count % static_cast<std::size_t>(width) == 0,
                    "host device: gather_rows of width {} over {} and {} elements", width,
                    dst.count, src.count);
        const index rows = static_cast<index>(dst.count) / width;
        const index src_rows = static_cast<index>(src.count) / width;
        WLB_EXPECTS(offsets.count == static_cast<std::size_t>(rows + 1),
                    "host device: gather_rows: {} offsets for {} rows", offsets.count, rows);
        const auto* off = offsets.as<std::int64_t>();
        const auto* from = sources.as<std::int64_t>();
        float* d = f(dst, "gather_rows destination");
        const float* s = f(src, "gather_rows source");
        std::vector<double> acc(static_cast<std::size_t>(width));
        for (index t = 0; t < rows; ++t) {
            std::fill(acc.begin(), acc.end(), 0.0);
            for (std::int64_t i = off[t]; i < off[t + 1]; ++i) {
                WLB_EXPECTS(from[i] >= 0 && from[i] < src_rows,
                            "host device: gather_rows source row {} of {}", from[i], src_rows);
                for (index c = 0; c < width; ++c)
                    acc[static_cast<std::size_t>(c)] += s[from[i] * width + c];
            }
            for (index c = 0; c < width; ++c)
                d[t * width + c] = static_cast<float>(acc[static_cast<std::size_t>(c)]);
        }
    }
    void expand_heads(dspan dst, index ld_dst, dspan src, index ld_src, index rows, index kv_heads,
                      index group, index head_dim) override {
        expect_matrix(dst, rows, kv_heads * group * head_dim, ld_dst, "expand_heads output");
        expect_matrix(src, rows, kv_heads * head_dim, ld_src, "expand_heads input");
        float* d = f(dst, "expand_heads output");
        const float* s = f(src, "expand_heads input");
        for (index r = 0; r < rows; ++r)
            for (index h = 0; h < kv_heads * group; ++h)
                std::memcpy(d + r * ld_dst + h * head_dim, s + r * ld_src + (h / group) * head_dim,
                            static_cast<std::size_t>(head_dim) * sizeof(float));
    }
    void reduce_heads(dspan dst, index ld_dst, dspan src, index ld_src, index rows, index kv_heads,
                      index group, index head_dim) override {
        expect_matrix(dst, rows, kv_heads * head_dim, ld_dst, "reduce_heads output");
        expect_matrix(src, rows, kv_heads * group * head_dim, ld_src, "reduce_heads input");
        float* d = f(dst, "reduce_heads output");
        const float* s = f(src, "reduce_heads input");
        for (index r = 0; r < rows; ++r)
            for (index g = 0; g < kv_heads; ++g)
                for (index e = 0; e < head_dim; ++e) {
                    double sum = 0;
                    for (index j = 0; j < group; ++j)
                        sum += s[r * ld_src + (g * group + j) * head_dim + e];
                    d[r * ld_dst + g * head_dim + e] = static_cast<float>(sum);
                }
    }

    void gemm(bool ta, bool tb, index m, index n, index k, double alpha, dspan a, index lda,
              dspan b, index ldb, double beta, dspan c, index ldc) override {
        expect_matrix(a, ta ? k : m, ta ? m : k, lda, "gemm A");
        expect_matrix(b, tb ? n : k, tb ? k : n, ldb, "gemm B");
        expect_matrix(c, m, n, ldc, "gemm C");
        kernels::gemm<float>(ta, tb, m, n, k, static_cast<float>(alpha), f(a, "gemm A"), lda,
                             f(b, "gemm B"), ldb, static_cast<float>(beta), f(c, "gemm C"), ldc);
    }
    void rms_norm_forward(dspan x, dspan w, index rows, index cols, double eps, dspan y,
                          dspan rstd) override {
        expect_matrix(x, rows, cols, cols, "rms_norm input");
        expect_matrix(y, rows, cols, cols, "rms_norm output");
        expect_type(rstd, dtype::f32, "rms_norm rstd");
        WLB_EXPECTS(w.count >= static_cast<std::size_t>(cols) &&
                        rstd.count >= static_cast<std::size_t>(rows),
                    "host device: rms_norm weight or rstd too short");
        kernels::rms_norm_forward<float>(f(x, "x"), f(w, "w"), rows, cols, static_cast<float>(eps),
                                         f(y, "y"), rstd.as<float>());
    }
    void rms_norm_backward(dspan x, dspan w, dspan rstd, dspan dy, index rows, index cols, dspan dx,
                           dspan dw) override {
        expect_matrix(x, rows, cols, cols, "rms_norm input");
        expect_matrix(dy, rows, cols, cols, "rms_norm output gradient");
        expect_matrix(dx, rows, cols, cols, "rms_norm input gradient");
        expect_type(dw, dtype::f32, "rms_norm weight gradient");
        expect_type(rstd, dtype::f32, "rms_norm rstd");
        kernels::rms_norm_backward<float>(f(x, "x"), f(w, "w"), rstd.as<float>(), f(dy, "dy"), rows,
                                          cols, f(dx, "dx"), dw.as<float>());
    }
    void rotary(dspan x, index rows, index heads, index head_dim, index ld, dspan positions,
                double base, bool inverse) override {
        expect_matrix(x, rows, heads * head_dim, ld, "rotary input");
        expect_type(positions, dtype::i64, "rotary positions");
        WLB_EXPECTS(positions.count >= static_cast<std::size_t>(rows),
                    "host device: {} positions for {} rows", positions.count, rows);
        kernels::rotary<float>(f(x, "x"), rows, heads, head_dim, ld, positions.as<index>(), base,
                               inverse);
    }
    void swiglu_forward(dspan gate, dspan up, dspan out) override {
        WLB_EXPECTS(gate.count == up.count && gate.count == out.count, "host device: swiglu sizes");
        kernels::swiglu_forward<float>(f(gate, "gate"), f(up, "up"), static_cast<index>(gate.count),
                                       f(out, "out"));
    }
    void swiglu_backward(dspan gate, dspan up, dspan dout, dspan dgate, dspan dup) override {
        WLB_EXPECTS(gate.count == up.count && gate.count == dout.count &&
                        gate.count == dgate.count && gate.count == dup.count,
                    "host device: swiglu backward sizes");
        kernels::swiglu_backward<float>(f(gate, "gate"), f(up, "up"), f(dout, "dout"),
                                        static_cast<index>(gate.count), f(dgate, "dgate"),
                                        f(dup, "dup"));
    }
    void embedding_forward(dspan table, dspan ids, index rows, index cols, dspan out) override {
        expect_type(ids, dtype::i32, "embedding ids");
        expect_matrix(out, rows, cols, cols, "embedding output");
        check_ids(ids, rows, static_cast<index>(table.count) / cols);
        kernels::embedding_forward<float>(f(table, "table"), ids.as<std::int32_t>(), rows, cols,
                                          f(out, "out"));
    }
    void embedding_backward(dspan dout, dspan ids, index rows, index cols, dspan dtable) override {
        expect_type(ids, dtype::i32, "embedding ids");
        expect_type(dtable, dtype::f32, "embedding gradient");
        expect_matrix(dout, rows, cols, cols, "embedding output gradient");
        check_ids(ids, rows, static_cast<index>(dtable.count) / cols);
        kernels::embedding_backward<float>(f(dout, "dout"), ids.as<std::int32_t>(), rows, cols,
                                           dtable.as<float>());
    }
    void cross_entropy(dspan logits, dspan labels, index rows, index vocab, double grad_scale,
                       dspan dlogits, dspan loss) override {
        expect_type(labels, dtype::i32, "cross-entropy labels");
        expect_type(loss, dtype::f64, "cross-entropy loss");
        expect_matrix(logits, rows, vocab, vocab, "logits");
        expect_matrix(dlogits, rows, vocab, vocab, "logit gradients");
        WLB_EXPECTS(labels.count >= static_cast<std::size_t>(rows) && loss.count >= 1,
                    "host device: cross-entropy labels or loss too short");
        loss.as<double>()[0] += kernels::cross_entropy<float>(
            f(logits, "logits"), labels.as<std::int32_t>(), rows, vocab,
            static_cast<float>(grad_scale), f(dlogits, "dlogits"));
    }
    std::unique_ptr<attention_layout>
    prepare_attention(const kernels::attention_chunks& chunks) override {
        chunks.validate();
        auto l = std::make_unique<host_layout>();
        l->cu_q.assign(chunks.cu_seqlens_q.begin(), chunks.cu_seqlens_q.end());
        l->cu_k.assign(chunks.cu_seqlens_k.begin(), chunks.cu_seqlens_k.end());
        l->offsets.assign(chunks.q_offsets.begin(), chunks.q_offsets.end());
        l->heads = chunks.heads;
        l->head_dim = chunks.head_dim;
        l->scale = chunks.scale;
        return l;
    }
    void attention_forward(const attention_layout& layout, dspan q, index ldq, dspan k, index ldk,
                           dspan v, index ldv, dspan out, index ldo, dspan lse) override {
        const auto& l = dynamic_cast<const host_layout&>(layout);
        const index width = l.heads * l.head_dim;
        expect_matrix(q, l.cu_q.back(), width, ldq, "attention q");
        expect_matrix(k, l.cu_k.back(), width, ldk, "attention k");
        expect_matrix(v, l.cu_k.back(), width, ldv, "attention v");
        expect_matrix(out, l.cu_q.back(), width, ldo, "attention out");
        expect_type(lse, dtype::f32, "attention lse");
        kernels::attention_forward<float>(l.chunks(), f(q, "q"), ldq, f(k, "k"), ldk, f(v, "v"),
                                          ldv, f(out, "out"), ldo, lse.as<float>());
    }
    void attention_backward(const attention_layout& layout, dspan q, index ldq, dspan k, index ldk,
                            dspan v, index ldv, dspan out, index ldo, dspan dout, index lddo,
                            dspan lse, dspan dq, index lddq, dspan dk, index lddk, dspan dv,
                            index lddv) override {
        const auto& l = dynamic_cast<const host_layout&>(layout);
        const index width = l.heads * l.head_dim;
        expect_matrix(dq, l.cu_q.back(), width, lddq, "attention dq");
        expect_matrix(dk, l.cu_k.back(), width, lddk, "attention dk");
        expect_matrix(dv, l.cu_k.back(), width, lddv, "attention dv");
        expect_type(lse, dtype::f32, "attention lse");
        kernels::attention_backward<float>(l.chunks(), f(q, "q"), ldq, f(k, "k"), ldk, f(v, "v"),
                                           ldv, f(out, "out"), ldo, f(dout, "dout"), lddo,
                                           lse.as<float>(), f(dq, "dq"), lddq, f(dk, "dk"), lddk,
                                           f(dv, "dv"), lddv);
    }

    void synchronize() override {}
    device_mark mark() override {
        m_marks.push_back(std::chrono::steady_clock::now());
        return static_cast<device_mark>(m_marks.size() - 1);
    }
    double seconds_between(device_mark a, device_mark b) override {
        WLB_EXPECTS(a < m_marks.size() && b < m_marks.size(), "host device: mark {} or {} of {}", a,
                    b, m_marks.size());
        return std::chrono::duration<double>(m_marks[b] - m_marks[a]).count();
    }
    void release_marks() override { m_marks.clear(); }

private:
    static double get(dspan s, std::size_t i) {
        return s.type == dtype::f64 ? s.as<double>()[i] : static_cast<double>(s.as<float>()[i]);
    }
    static void put(dspan s, std::size_t i, double v) {
        if (s.type == dtype::f64)
            s.as<double>()[i] = v;
        else
            s.as<float>()[i] = static_cast<float>(v);
    }
    static void check_ids(dspan ids, index rows, index vocab) {
        WLB_EXPECTS(ids.count >= static_cast<std::size_t>(rows), "host device: {} ids for {} rows",
                    ids.count, rows);
        for (index r = 0; r < rows; ++r)
            WLB_EXPECTS(ids.as<std::int32_t>()[r] >= 0 && ids.as<std::int32_t>()[r] < vocab,
                        "host device: token id {} outside a vocabulary of {}",
                        ids.as<std::int32_t>()[r], vocab);
    }

    std::vector<std::chrono::steady_clock::time_point> m_marks;
};

} // namespace

std::unique_ptr<compute_device> make_host_device() {
    return std::make_unique<host_device>();
}

} // namespace wlb::runtime
