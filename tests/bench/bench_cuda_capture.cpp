// Overhead of device capture on step time (issue 9: target under 1%; NVRx reports under 1%).
// A step is `layers` decoder layers of one micro-batch on one GPU: forward (RMSNorm, QKV GEMM,
// rotary, varlen attention over a packed micro-batch of mixed documents, output GEMM, MLP) and
// backward (attention backward and the GEMMs' data and weight gradients). Steps run without
// capture (A), then with CUPTI capture and NVTX ranges per step, micro-batch, phase and layer
// (B), then without again (C); each step is timed on the host with a device synchronization at
// its end. Printed: median step time of A+C and of B, the overhead, the records captured and
// lost, and the time to convert them to trace events (after the run, not on the step).
//
//   bench_cuda_capture [--steps N] [--layers N] [--tokens N]
//
// Skips (exit 0) without a CUDA device.
#include "kernels/cuda_ops.hpp"
#include "kernels/device_query.hpp"
#include "profiler/capture/capture_session.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fmt/format.h>
#include <optional>
#include <vector>

using namespace wlb;
namespace kc = kernels::cuda;
using kernels::bf16;
using ix = kernels::index;

namespace {

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

} // namespace

int main(int argc, char** argv) {
    int steps = 20, layers = 4;
    ix tokens = 16384;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--steps"))
            steps = std::max(3, std::atoi(argv[i + 1]));
        else if (!std::strcmp(argv[i], "--layers"))
            layers = std::max(1, std::atoi(argv[i + 1]));
        else if (!std::strcmp(argv[i], "--tokens"))
            tokens = std::max<ix>(1024, std::atoll(argv[i + 1]));
    }
    const auto devices = kernels::query_devices();
    if (devices.devices.empty()) {
        fmt::print("bench_cuda_capture: skipped: {}\n", devices.reason);
        return 0;
    }
    // 7B on tp=8: 4 heads of 128, hidden 4096, ffn 1376.
    const ix heads = 4, hd = 128, width = heads * hd, hidden = 4096, ffn = 1376;
    std::vector<ix> cu{0}, offsets;
    for (ix left = tokens, len = tokens / 2; left > 0; len = std::max<ix>(len / 2, 512)) {
        const ix take = std::min(len, left);
        cu.push_back(cu.back() + take);
        offsets.push_back(0);
        left -= take;
    }
    kernels::attention_chunks chunks;
    chunks.cu_seqlens_q = cu;
    chunks.cu_seqlens_k = cu;
    chunks.q_offsets = offsets;
    chunks.heads = heads;
    chunks.head_dim = hd;
    chunks.scale = 1.0 / std::sqrt(static_cast<double>(hd));
    kc::stream stream;
    const auto s = stream.get();
    kc::attention_plan plan(chunks, kc::attention_variant::automatic, s);
    auto buf = [&](ix n, std::uint64_t seed) {
        kc::device_buffer b(static_cast<std::size_t>(n) * sizeof(bf16));
        kc::fill_random(b.as<bf16>(), n, seed, 0.5f, s);
        return b;
    };
    auto x = buf(tokens * hidden, 1), xn = buf(tokens * hidden, 2), w = buf(hidden, 3);
    auto wqkv = buf(hidden * 3 * width, 4), qkv = buf(tokens * 3 * width, 5);
    auto out = buf(tokens * width, 6), wo = buf(width * hidden, 7), y = buf(tokens * hidden, 8);
    auto w1 = buf(hidden * ffn, 9), h1 = buf(tokens * ffn, 10), w2 = buf(ffn * hidden, 11);
    auto dq = buf(tokens * 3 * width, 12), dout = buf(tokens * width, 13);
    auto dw = buf(hidden * 3 * width, 14);
    kc::device_buffer rstd(static_cast<std::size_t>(tokens) * sizeof(float));
    kc::device_buffer lse(static_cast<std::size_t>(tokens * heads) * sizeof(float));
    std::vector<ix> pos(static_cast<std::size_t>(tokens));
    for (ix i = 0; i < tokens; ++i)
        pos[static_cast<std::size_t>(i)] = i;
    kc::device_array<ix> positions(pos, s);
    kc::attention_workspace ws;
    kc::blas_handle blas;
    auto b = [](const kc::device_buffer& d) {
        return d.as<bf16>();
    };
    const ix ld = 3 * width;

    auto run_step = [&](int step, profiler::capture_session* cap) {
        std::optional<profiler::scoped_range> st, mb;
        if (cap != nullptr) {
            st.emplace(cap->step(step));
            mb.emplace(cap->micro_batch(0));
        }
        for (auto ph : {runtime::phase::fwd, runtime::phase::bwd}) {
            std::optional<profiler::scoped_range> phase_range;
            if (cap != nullptr)
                phase_range.emplace(cap->phase(ph));
            for (int l = 0; l < layers; ++l) {
                std::optional<profiler::scoped_range> layer_range;
                if (cap != nullptr)
                    layer_range.emplace(cap->layer(l));
                if (ph == runtime::phase::fwd) {
                    kc::rms_norm_forward(b(x), b(w), tokens, hidden, 1e-5f, b(xn), rstd.as<float>(),
                                         s);
                    kc::gemm(blas, false, false, tokens, ld, hidden, 1.f, b(xn), hidden, b(wqkv),
                             ld, 0.f, b(qkv), ld, s);
                    kc::rotary(b(qkv), tokens, 2 * heads, hd, ld, positions.data(), 1e4, false, s);
                    kc::attention_forward(plan, b(qkv), ld, b(qkv) + width, ld, b(qkv) + 2 * width,
                                          ld, b(out), width, lse.as<float>(), s);
                    kc::gemm(blas, false, false, tokens, hidden, width, 1.f, b(out), width, b(wo),
                             hidden, 0.f, b(y), hidden, s);
                    kc::gemm(blas, false, false, tokens, ffn, hidden, 1.f, b(y), hidden, b(w1), ffn,
                             0.f, b(h1), ffn, s);
                    kc::gemm(blas, false, false, tokens, hidden, ffn, 1.f, b(h1), ffn, b(w2),
                             hidden, 0.f, b(y), hidden, s);
                } else {
                    kc::gemm(blas, false, true, tokens, ffn, hidden, 1.f, b(y), hidden, b(w2),
                             hidden, 0.f, b(h1), ffn, s);
                    kc::gemm(blas, false, true, tokens, hidden, ffn, 1.f, b(h1), ffn, b(w1), ffn,
                             0.f, b(y), hidden, s);
                    kc::attention_backward(plan, b(qkv), ld, b(qkv) + width, ld, b(qkv) + 2 * width,
                                           ld, b(out), width, b(dout), width, lse.as<float>(),
                                           b(dq), ld, b(dq) + width, ld, b(dq) + 2 * width, ld, ws,
                                           s);
                    kc::gemm(blas, false, true, tokens, hidden, ld, 1.f, b(dq), ld, b(wqkv), ld,
                             0.f, b(xn), hidden, s);
                    kc::gemm(blas, true, false, hidden, ld, tokens, 1.f, b(xn), hidden, b(dq), ld,
                             1.f, b(dw), ld, s);
                }
            }
        }
        kc::synchronize(s);
    };
    auto timed_steps = [&](int count, int first, profiler::capture_session* cap) {
        std::vector<double> seconds;
        for (int i = 0; i < count; ++i) {
            const auto t0 = std::chrono::steady_clock::now();
            run_step(first + i, cap);
            seconds.push_back(
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        }
        return seconds;
    };

    timed_steps(3, 0, nullptr); // warm-up
    auto plain = timed_steps(steps, 0, nullptr);
    auto session = profiler::capture_session::make_default(0);
    session->start();
    if (!session->capturing()) {
        fmt::print("bench_cuda_capture: capture unavailable: {}\n",
                   session->finish().report.dump());
        return 1;
    }
    session->register_stream(s, runtime::lane::compute);
    timed_steps(3, steps, session.get()); // CUPTI's first records and lazy set-up
    const auto captured = timed_steps(steps, steps + 3, session.get());
    const auto t0 = std::chrono::steady_clock::now();
    const auto result = session->finish();
    const double convert =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const auto after = timed_steps(steps, 2 * steps + 3, nullptr);
    plain.insert(plain.end(), after.begin(), after.end());

    const double base = median(plain), with = median(captured);
    fmt::print("device: {}; {} layers of 7B/tp=8 shapes over {} tokens ({} documents); "
               "measured\n\n",
               devices.devices[0].name, layers, tokens, offsets.size());
    fmt::print("| steps without capture | median step ms | steps with capture | median step ms | "
               "overhead | events | records dropped | buffers refused | conversion ms |\n");
    fmt::print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    fmt::print("| {} | {:.3f} | {} | {:.3f} | {:+.2f}% | {} | {} | {} | {:.1f} |\n", plain.size(),
               base * 1e3, captured.size(), with * 1e3, (with / base - 1.0) * 100.0,
               result.events.size(),
               result.report["losses"]["dropped_records"].get<std::uint64_t>(),
               result.report["losses"]["buffers_refused"].get<std::uint64_t>(), convert * 1e3);
    return 0;
}
