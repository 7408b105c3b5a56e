// Single-GPU emulation (runtime/train/gpu_emulation.hpp) on the CUDA kernels' host interface.
#include "runtime/train/gpu_emulation.hpp"

#include "base/error.hpp"
#include "kernels/cuda_ops.hpp"
#include "kernels/device_query.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

namespace wlb::runtime {

namespace {

namespace kc = kernels::cuda;
using kernels::bf16;
using kernels::index;

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/// Median device seconds of `f` over `repeats` runs after `warmup` runs, each run bracketed by
/// events on `stream` (where f queues all its work).
template <typename F>
double time_median(const emulation_options& o, kc::stream_t stream, F&& f) {
    for (int i = 0; i < o.warmup; ++i)
        f();
    kc::event_timer timer;
    std::vector<double> seconds;
    for (int i = 0; i < o.repeats; ++i) {
        timer.start(stream);
        f();
        timer.stop(stream);
        seconds.push_back(timer.seconds());
    }
    return median(std::move(seconds));
}

/// A bf16 device buffer of `n` values filled with uniform values in [-scale, scale).
kc::device_buffer random_bf16(index n, std::uint64_t seed, kc::stream_t stream,
                              float scale = 1.0f) {
    kc::device_buffer b(static_cast<std::size_t>(n) * sizeof(bf16));
    kc::fill_random(b.as<bf16>(), n, seed, scale, stream);
    return b;
}

/// GEMMs and element-wise work of one layer for `tokens` tokens (see the header).
void measure_linear(index tokens, const std::vector<index>& positions, const emulated_layer& l,
                    const emulation_options& o, kc::blas_handle& blas, kc::stream_t s,
                    emulated_rank& r) {
    const index T = tokens;
    const index H = l.hidden;
    const index hd = l.head_dim;
    const index A = static_cast<index>(l.heads) * hd;                  // attention output width
    const index Q = static_cast<index>(l.heads + 2 * l.kv_heads) * hd; // fused QKV width
    const index F = l.ffn;
    const float eps = 1e-5f;
    std::uint64_t seed = 1000;
    const float weight_scale = 0.02f;
    auto x = random_bf16(T * H, ++seed, s), y = random_bf16(T * H, ++seed, s);
    auto xn = random_bf16(T * H, ++seed, s), dy = random_bf16(T * H, ++seed, s);
    auto dx = random_bf16(T * H, ++seed, s), dxn = random_bf16(T * H, ++seed, s);
    auto w_norm = random_bf16(H, ++seed, s);
    kc::device_buffer rstd(static_cast<std::size_t>(T) * sizeof(float));
    kc::device_buffer dnorm(static_cast<std::size_t>(H) * sizeof(float));
    kc::fill_zero(dnorm.data(), dnorm.bytes(), s);
    auto wqkv = random_bf16(H * Q, ++seed, s, weight_scale), qkv = random_bf16(T * Q, ++seed, s);
    auto dqkv = random_bf16(T * Q, ++seed, s), dwqkv = random_bf16(H * Q, ++seed, s);
    auto wo = random_bf16(A * H, ++seed, s, weight_scale), attn = random_bf16(T * A, ++seed, s);
    auto dattn = random_bf16(T * A, ++seed, s), dwo = random_bf16(A * H, ++seed, s);
    auto wup = random_bf16(H * F, ++seed, s, weight_scale), up = random_bf16(T * F, ++seed, s);
    auto dup = random_bf16(T * F, ++seed, s), dwup = random_bf16(H * F, ++seed, s);
    auto wgate = random_bf16(H * F, ++seed, s, weight_scale);
    auto gate = random_bf16(T * F, ++seed, s), dgate = random_bf16(T * F, ++seed, s);
    auto dwgate = random_bf16(H * F, ++seed, s);
    auto act = random_bf16(T * F, ++seed, s), dact = random_bf16(T * F, ++seed, s);
    auto wd = random_bf16(F * H, ++seed, s, weight_scale), dwd = random_bf16(F * H, ++seed, s);
    kc::device_array<index> pos(positions, s);

    auto b = [](const kc::device_buffer& buf) {
        return buf.as<bf16>();
    };
    const bool gated = l.gated_mlp;
    r.linear_fwd_seconds = time_median(o, s, [&] {
        kc::rms_norm_forward(b(x), b(w_norm), T, H, eps, b(xn), rstd.as<float>(), s);
        kc::gemm(blas, false, false, T, Q, H, 1.f, b(xn), H, b(wqkv), Q, 0.f, b(qkv), Q, s);
        kc::rotary(b(qkv), T, l.heads, hd, Q, pos.data(), l.rotary_base, false, s);
        kc::rotary(b(qkv) + A, T, l.kv_heads, hd, Q, pos.data(), l.rotary_base, false, s);
        kc::gemm(blas, false, false, T, H, A, 1.f, b(attn), A, b(wo), H, 0.f, b(y), H, s);
        kc::rms_norm_forward(b(y), b(w_norm), T, H, eps, b(xn), rstd.as<float>(), s);
        kc::gemm(blas, false, false, T, F, H, 1.f, b(xn), H, b(wup), F, 0.f, b(up), F, s);
        if (gated) {
            kc::gemm(blas, false, false, T, F, H, 1.f, b(xn), H, b(wgate), F, 0.f, b(gate), F, s);
            kc::swiglu_forward(b(gate), b(up), T * F, b(act), s);
        }
        kc::gemm(blas, false, false, T, H, F, 1.f, gated ? b(act) : b(up), F, b(wd), H, 0.f, b(y),
                 H, s);
    });
    r.linear_bwd_seconds = time_median(o, s, [&] {
        // MLP: down projection, activation, up and gate projections, norm.
        kc::gemm(blas, false, true, T, F, H, 1.f, b(dy), H, b(wd), H, 0.f, b(dact), F, s);
        kc::gemm(blas, true, false, F, H, T, 1.f, gated ? b(act) : b(up), F, b(dy), H, 1.f, b(dwd),
                 H, s);
        if (gated) {
            kc::swiglu_backward(b(gate), b(up), b(dact), T * F, b(dgate), b(dup), s);
            kc::gemm(blas, false, true, T, H, F, 1.f, b(dgate), F, b(wgate), F, 0.f, b(dx), H, s);
            kc::gemm(blas, true, false, H, F, T, 1.f, b(xn), H, b(dgate), F, 1.f, b(dwgate), F, s);
        }
        kc::gemm(blas, false, true, T, H, F, 1.f, gated ? b(dup) : b(dact), F, b(wup), F,
                 gated ? 1.f : 0.f, b(dx), H, s);
        kc::gemm(blas, true, false, H, F, T, 1.f, b(xn), H, gated ? b(dup) : b(dact), F, 1.f,
                 b(dwup), F, s);
        kc::rms_norm_backward(b(y), b(w_norm), rstd.as<float>(), b(dx), T, H, b(dxn),
                              dnorm.as<float>(), s);
        // Attention output projection, rotary, QKV projection, norm.
        kc::gemm(blas, false, true, T, A, H, 1.f, b(dxn), H, b(wo), H, 0.f, b(dattn), A, s);
        kc::gemm(blas, true, false, A, H, T, 1.f, b(attn), A, b(dxn), H, 1.f, b(dwo), H, s);
        kc::rotary(b(dqkv), T, l.heads, hd, Q, pos.data(), l.rotary_base, true, s);
        kc::rotary(b(dqkv) + A, T, l.kv_heads, hd, Q, pos.data(), l.rotary_base, true, s);
        kc::gemm(blas, false, true, T, H, Q, 1.f, b(dqkv), Q, b(wqkv), Q, 0.f, b(dx), H, s);
        kc::gemm(blas, true, false, H, Q, T, 1.f, b(xn), H, b(dqkv), Q, 1.f, b(dwqkv), Q, s);
        kc::rms_norm_backward(b(x), b(w_norm), rstd.as<float>(), b(dx), T, H, b(dxn),
                              dnorm.as<float>(), s);
    });
}

emulated_rank measure_rank(const cp_shard& shard, const emulated_layer& l,
                           const emulation_options& o, kc::blas_handle& blas, kc::stream_t s,
                           std::string& variant) {
    std::vector<index> cu_q{0}, cu_k{0}, offsets, positions;
    emulated_rank r;
    for (const auto& c : shard.chunks) {
        WLB_EXPECTS(c.q_tokens > 0 && c.q_offset >= 0,
                    "emulation: chunk of doc {} with {} tokens "
                    "at offset {}",
                    c.doc_id, c.q_tokens, c.q_offset);
        cu_q.push_back(cu_q.back() + c.q_tokens);
        cu_k.push_back(cu_k.back() + c.kv_tokens());
        offsets.push_back(c.q_offset);
        for (index i = 0; i < c.q_tokens; ++i)
            positions.push_back(c.q_offset + i);
        r.causal_pairs += causal_pairs(c.q_tokens, c.q_offset);
    }
    r.tokens = cu_q.back();
    r.chunks = static_cast<int>(shard.chunks.size());
    if (r.tokens == 0)
        return r;
    const index T = r.tokens;
    const index K = cu_k.back();
    const index width = static_cast<index>(l.heads) * l.head_dim;
    kernels::attention_chunks chunks;
    chunks.cu_seqlens_q = cu_q;
    chunks.cu_seqlens_k = cu_k;
    chunks.q_offsets = offsets;
    chunks.heads = l.heads;
    chunks.head_dim = l.head_dim;
    chunks.scale = 1.0 / std::sqrt(static_cast<double>(l.head_dim));
    kc::attention_plan plan(chunks, kc::attention_variant::automatic, s);
    auto q = random_bf16(T * width, 1, s), k = random_bf16(K * width, 2, s);
    auto v = random_bf16(K * width, 3, s), dout = random_bf16(T * width, 4, s);
    auto out = random_bf16(T * width, 5, s), dq = random_bf16(T * width, 6, s);
    auto dk = random_bf16(K * width, 7, s), dv = random_bf16(K * width, 8, s);
    kc::device_buffer lse(static_cast<std::size_t>(T * l.heads) * sizeof(float));
    kc::attention_workspace ws;
    auto b = [](const kc::device_buffer& buf) {
        return buf.as<bf16>();
    };
    const void* pointers[] = {q.data(),    k.data(),  v.data(),  out.data(),
                              dout.data(), dq.data(), dk.data(), dv.data()};
    const index strides[] = {width};
    variant = std::string(kc::to_string(plan.resolve(pointers, strides)));
    r.attention_fwd_seconds = time_median(o, s, [&] {
        kc::attention_forward(plan, b(q), width, b(k), width, b(v), width, b(out), width,
                              lse.as<float>(), s);
    });
    r.attention_bwd_seconds = time_median(o, s, [&] {
        kc::attention_backward(plan, b(q), width, b(k), width, b(v), width, b(out), width, b(dout),
                               width, lse.as<float>(), b(dq), width, b(dk), width, b(dv), width, ws,
                               s);
    });
    r.attention_fwd_flops = plan.forward_flops();
    if (o.linear)
        measure_linear(T, positions, l, o, blas, s, r);
    return r;
}

/// Checks the options and the device, makes it current, and names it.
std::string prepare_device(const emulated_layer& l, const emulation_options& o) {
    WLB_EXPECTS(o.repeats >= 1 && o.warmup >= 0, "emulation: {} repeats, {} warm-up runs",
                o.repeats, o.warmup);
    WLB_EXPECTS(l.hidden > 0 && l.heads > 0 && l.kv_heads > 0 && l.head_dim > 0 && l.ffn > 0 &&
                    l.head_dim % 2 == 0,
                "emulation: layer of hidden {}, {} heads, {} kv heads of {}, ffn {}", l.hidden,
                l.heads, l.kv_heads, l.head_dim, l.ffn);
    const auto report = kernels::query_devices();
    if (report.devices.empty())
        throw runtime_failure("the single-GPU emulation needs a CUDA device: " + report.reason);
    if (o.device < 0 || o.device >= static_cast<int>(report.devices.size()))
        throw input_error(
            fmt::format("CUDA device {} requested, {} visible", o.device, report.devices.size()));
    kc::set_device(o.device);
    return report.devices[static_cast<std::size_t>(o.device)].name;
}

} // namespace

emulation_result emulate_cp_group(const sharded_micro_batch& batch, const emulated_layer& layer,
                                  const emulation_options& options) {
    emulation_result result;
    result.device_name = prepare_device(layer, options);
    kc::stream stream;
    kc::blas_handle blas;
    for (const auto& shard : batch.ranks)
        result.ranks.push_back(
            measure_rank(shard, layer, options, blas, stream.get(), result.attention_variant));
    if (options.comm_seconds)
        result.comm_seconds = options.comm_seconds(batch);
    return result;
}

emulation_result emulate_micro_batches(const std::vector<micro_batch>& micro_batches,
                                       const emulated_layer& layer,
                                       const emulation_options& options) {
    emulation_result result;
    result.device_name = prepare_device(layer, options);
    kc::stream stream;
    kc::blas_handle blas;
    for (const auto& mb : micro_batches) {
        cp_shard whole;
        for (const auto& d : mb.docs)
            whole.chunks.push_back({d.id, 0, d.tokens});
        result.ranks.push_back(
            measure_rank(whole, layer, options, blas, stream.get(), result.attention_variant));
    }
    return result;
}

} // namespace wlb::runtime
