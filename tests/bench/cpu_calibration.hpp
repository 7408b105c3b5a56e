// Calibration of the cost model to this machine's CPU, shared by the benchmarks (bench_cpu_runtime
// --calibrate prints it; bench_cpu_run measures it in the same run as the steps it predicts).
// Measured at the decoder's own shapes, on every rank at once (as in a run; figures are the
// ranks' means), one BLAS thread per rank:
//   gemm_tflops          a layer's forward and backward GEMMs at 2048 tokens
//   attention_fwd        the attention kernel's forward rate over whole documents of 16..4096
//                        tokens; attention_bwd_rate_ratio its backward's rate against it (FLOPs
//                        by the cost model's convention: backward 2.5x forward)
//   hbm_gbytes_per_s     effective: a layer's element-wise kernels (norms, rotary, SwiGLU,
//                        residual adds, K/V layout) against the cost model's 24 + 48
//                        hidden-sized passes per token
//   nvlink_*             under mpirun: MPI all-reduce of one value (latency per ring step) and
//                        all-gather of 8 MiB (bandwidth); every rank on one host
#pragma once

#include "kernels/ops.hpp"
#include "runtime/comm/communicator.hpp"
#include "runtime/parallel/batch.hpp"
#include "runtime/train/decoder.hpp"
#include "tuner/cost/hardware.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fmt/format.h>
#include <random>
#include <string>
#include <vector>

namespace wlb::bench {

using namespace wlb::runtime;
namespace k = wlb::kernels;

template <typename F>
double median_seconds(int repeats, F&& f) {
    std::vector<double> s;
    for (int r = 0; r < repeats; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        f();
        s.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(s.begin(), s.end());
    return s[s.size() / 2];
}

template <typename T>
std::vector<T> random_values(std::size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<double> d(0.0, 1.0);
    std::vector<T> v(n);
    for (auto& x : v)
        x = static_cast<T>(d(rng));
    return v;
}

/// The mean of one value over the world's ranks (or the value without MPI).
double rank_mean(communicator* world, double v) {
    if (world == nullptr)
        return v;
    std::vector<double> x = {v};
    world->all_reduce(std::span<double>(x));
    return x[0] / world->size();
}

/// Times f on every rank at once (a barrier first): the ranks' mean of the median of `repeats`.
template <typename F>
double timed_on_all(communicator* world, int repeats, F&& f) {
    if (world != nullptr)
        world->barrier();
    return rank_mean(world, median_seconds(repeats, f));
}

template <typename T>
wlb::tuner::hardware_config calibrate_cpu(const decoder_config& m, communicator* world) {
    using idx = k::index;
    const idx tokens = 2048, h = m.hidden, f = m.ffn, w3 = 3 * h, heads = m.heads, d = m.head_dim(),
              wide = std::max(f, w3);
    const auto act = static_cast<std::size_t>(tokens * wide);
    const auto weights = static_cast<std::size_t>(h * wide);
    auto x = random_values<T>(act, 1), y = random_values<T>(act, 2), out = random_values<T>(act, 3);
    auto w = random_values<T>(weights, 4), gw = random_values<T>(weights, 5);
    // A layer's GEMMs, forward (x @ W) and backward (dX = dY W^T, dW += X^T dY), as the decoder
    // runs them (runtime/train/decoder_step.cpp): QKV h x 3h, output h x h, gate and up h x ffn,
    // down ffn x h.
    struct shape {
        idx in, outc;
    };
    const std::vector<shape> shapes = {{h, w3}, {h, h}, {h, f}, {h, f}, {f, h}};
    double flops = 0;
    for (const auto& sh : shapes)
        flops += 3 * 2.0 * static_cast<double>(tokens * sh.in * sh.outc);
    const double gemm_s = timed_on_all(world, 5, [&] {
        for (const auto& sh : shapes) {
            k::gemm<T>(false, false, tokens, sh.outc, sh.in, T(1), x.data(), sh.in, w.data(),
                       sh.outc, T(0), out.data(), sh.outc);
            k::gemm<T>(false, true, tokens, sh.in, sh.outc, T(1), out.data(), sh.outc, w.data(),
                       sh.outc, T(0), y.data(), sh.in);
            k::gemm<T>(true, false, sh.in, sh.outc, tokens, T(1), x.data(), sh.in, out.data(),
                       sh.outc, T(1), gw.data(), sh.outc);
        }
    });
    const double gemm_tflops = flops / gemm_s / 1e12;

    // Element-wise kernels of one layer, forward and backward, against the cost model's
    // 24 (forward) + 48 (backward) hidden-sized passes per token.
    const auto th = static_cast<std::size_t>(tokens * h), tf = static_cast<std::size_t>(tokens * f);
    auto a = random_values<T>(th, 11), da = random_values<T>(th, 12), b = random_values<T>(th, 13);
    auto gate = random_values<T>(tf, 14), up = random_values<T>(tf, 15),
         dact = random_values<T>(tf, 16);
    std::vector<T> normed(th), act_out(tf), dgate(tf), dup(tf),
        qkv(static_cast<std::size_t>(tokens * w3));
    std::vector<T> rstd(static_cast<std::size_t>(tokens)), norm_w(static_cast<std::size_t>(h), 1),
        dnorm_w(static_cast<std::size_t>(h), 0);
    std::vector<k::index> pos(static_cast<std::size_t>(tokens));
    for (idx i = 0; i < tokens; ++i)
        pos[static_cast<std::size_t>(i)] = i;
    const double elementwise_s = timed_on_all(world, 5, [&] {
        for (bool backward : {false, true}) {
            for (int n = 0; n < 2; ++n) {
                k::rms_norm_forward<T>(a.data(), norm_w.data(), tokens, h, T(1e-5), normed.data(),
                                       rstd.data());
                if (backward)
                    k::rms_norm_backward<T>(a.data(), norm_w.data(), rstd.data(), da.data(), tokens,
                                            h, b.data(), dnorm_w.data());
            }
            k::rotary<T>(qkv.data(), tokens, heads, d, w3, pos.data(), m.rope_base, backward);
            k::rotary<T>(qkv.data() + h, tokens, heads, d, w3, pos.data(), m.rope_base, backward);
            if (backward)
                k::swiglu_backward<T>(gate.data(), up.data(), dact.data(), tokens * f, dgate.data(),
                                      dup.data());
            else
                k::swiglu_forward<T>(gate.data(), up.data(), tokens * f, act_out.data());
            for (int pass = 0; pass < 3; ++pass) // residual adds and the K/V layout copies
                for (std::size_t i = 0; i < th; ++i)
                    b[i] = a[i] + da[i];
        }
    });
    const double elementwise_bytes =
        3.0 * 24.0 * static_cast<double>(tokens * h) * static_cast<double>(sizeof(T));

    // Attention forward by query-chunk length (whole documents of n tokens, ~8K tokens in all),
    // and the backward's rate against the forward's (FLOPs: 4 * pairs * hidden forward, 2.5x
    // backward, the cost model's convention).
    std::vector<wlb::tuner::rate_point> table;
    double bwd_ratio_sum = 0;
    int bwd_points = 0;
    for (idx n : {16, 64, 256, 1024, 4096}) {
        const idx docs = std::max<idx>(1, 8192 / n / (n >= 4096 ? 2 : 1));
        const idx total = docs * n;
        std::vector<k::index> cu{0}, off;
        for (idx i = 0; i < docs; ++i) {
            cu.push_back(cu.back() + n);
            off.push_back(0);
        }
        const auto rows = static_cast<std::size_t>(total * h);
        auto q = random_values<T>(rows, 7), kk = random_values<T>(rows, 8),
             v = random_values<T>(rows, 9), dout = random_values<T>(rows, 10);
        std::vector<T> o(rows), dq(rows), dk(rows), dv(rows),
            lse(static_cast<std::size_t>(total * heads));
        const k::attention_chunks ch{cu,    cu, off,
                                     heads, d,  1.0 / std::sqrt(static_cast<double>(d))};
        const double fwd = timed_on_all(world, 3, [&] {
            k::attention_forward<T>(ch, q.data(), h, kk.data(), h, v.data(), h, o.data(), h,
                                    lse.data());
        });
        const double bwd = timed_on_all(world, 3, [&] {
            k::attention_backward<T>(ch, q.data(), h, kk.data(), h, v.data(), h, o.data(), h,
                                     dout.data(), h, lse.data(), dq.data(), h, dk.data(), h,
                                     dv.data(), h);
        });
        const double attn_flops =
            4.0 * static_cast<double>(docs * causal_pairs(n)) * static_cast<double>(h);
        table.push_back({static_cast<int>(n), attn_flops / fwd / 1e12});
        bwd_ratio_sum += (2.5 * attn_flops / bwd) / (attn_flops / fwd);
        ++bwd_points;
    }

    // Collectives between the ranks (shared memory on one host): latency from an all-reduce of
    // one value (2(n-1) ring steps), bandwidth from an all-gather of 8 MiB.
    double latency_us = 1.0, bandwidth_gb = 10.0;
    if (world != nullptr && world->size() > 1) {
        const double n = world->size();
        std::vector<double> one = {1.0};
        const double small = timed_on_all(world, 5,
                                          [&] {
                                              for (int i = 0; i < 100; ++i)
                                                  world->all_reduce(std::span<double>(one));
                                          }) /
                             100.0;
        latency_us = small / (2.0 * (n - 1.0)) * 1e6;
        const std::size_t block = (std::size_t{1} << 20) / static_cast<std::size_t>(n);
        std::vector<double> mine(block, 1.0), all(block * static_cast<std::size_t>(n));
        const double big = timed_on_all(world, 5, [&] {
            world->all_gather(std::span<const double>(mine), std::span<double>(all));
        });
        const double bytes = static_cast<double>(all.size() * sizeof(double));
        bandwidth_gb = (n - 1.0) / n * bytes / std::max(big - (n - 1.0) * small / 2.0, 1e-9) / 1e9;
    }

    wlb::tuner::hardware_config hw;
    hw.name = "cpu-calibrated";
    hw.gemm_tflops = gemm_tflops;
    hw.peak_bf16_tflops = gemm_tflops;
    hw.attention_fwd = table;
    hw.attention_bwd_rate_ratio = bwd_ratio_sum / bwd_points;
    hw.attention_tile = 64;
    hw.hbm_gbytes_per_s = elementwise_bytes / elementwise_s / 1e9;
    hw.nvlink_gbytes_per_s = bandwidth_gb;
    hw.nvlink_latency_us = latency_us;
    hw.network_gbytes_per_s = bandwidth_gb;
    hw.network_latency_us = latency_us;
    hw.gpus_per_node = 64;
    hw.memory_gbytes = 16;
    const std::string how =
        fmt::format("bench_cpu_runtime --calibrate {} {} on {} rank(s), 1 BLAS thread each", m.name,
                    sizeof(T) == 4 ? "float" : "double", world == nullptr ? 1 : world->size());
    hw.sources = {
        {"gemm_tflops", how + ": a layer's forward and backward GEMMs at 2048 tokens"},
        {"peak_bf16_tflops", "set to gemm_tflops (no separate peak on a CPU)"},
        {"attention_fwd", how + ": forward kernel over whole documents of 16..4096 tokens"},
        {"attention_bwd_rate_ratio", how + ": backward rate (2.5x forward FLOPs) / forward rate"},
        {"attention_tile", "the CPU kernel's query block (kernels/attention.cpp)"},
        {"hbm_gbytes_per_s", how + ": effective, the element-wise kernels of a layer (forward "
                                   "and backward) against the cost model's 24 + 48 hidden-sized "
                                   "passes per token"},
        {"nvlink_gbytes_per_s", how + ": MPI all-gather of 8 MiB (shared memory)"},
        {"nvlink_latency_us", how + ": MPI all-reduce of one value, per ring step"},
        {"network_gbytes_per_s", "as nvlink: every rank on one host"},
        {"network_latency_us", "as nvlink: every rank on one host"},
        {"gpus_per_node", "ranks per host: all of a dev VM job"},
        {"memory_gbytes", "assumed host memory per rank"},
    };
    return hw;
}

} // namespace wlb::bench
