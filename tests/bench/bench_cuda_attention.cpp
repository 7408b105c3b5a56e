// Throughput of the CUDA varlen causal attention (kernels/cuda_ops.hpp) on one GPU, in TFLOP/s
// (design.md convention: forward 4 * causal pairs * heads * head_dim; backward 2.5 x forward).
//
// Table 1, FlashAttention-3's benchmark shapes: 16K tokens in documents of 512 .. 16K tokens,
// heads * head_dim = 2048 (32 x 64 or 16 x 128), causal; beside FA3's published H100 forward
// figures for head dim 128 (arXiv 2407.08608, figure "Attention forward speed, head dim 128
// (H100 80GB SXM5)", FP16; we read it as the panel without the causal mask, so a causal kernel
// is expected below it at short lengths).
// Table 2, CP chunk shapes: chunks of q queries after k - q earlier tokens (a CP rank's chunk of a
// long document), 16 heads of 128: the q-dependence the adaptive sharder pads for (WLB-LLM:
// the achieved rate jumps between q = 128 and 256 on H100).
//
//   bench_cuda_attention [--repeats N] [--variant automatic|mma|simt] [--quick] [--tsv PATH]
//   bench_cuda_attention --list-shapes [--quick]
//
// --tsv writes one row per shape (id, variant, ms and TFLOP/s forward and backward) for
// scripts/gpu-check.sh, which puts PyTorch's figures for the same shapes beside them;
// --list-shapes prints the shapes (id, chunks, q_len, q_offset, k_len, heads, head_dim, forward
// FLOPs) without measuring, for the peer script (scripts/gpu/sdpa_peer.py). Skips (exit 0) with
// the reason when there is no CUDA device.
#include "kernels/cuda_ops.hpp"
#include "kernels/device_query.hpp"
#include "runtime/parallel/batch.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fmt/format.h>
#include <string>
#include <vector>

using namespace wlb;
namespace kc = kernels::cuda;
using kernels::bf16;
using ix = kernels::index;

namespace {

struct timing {
    double fwd_seconds = 0, bwd_seconds = 0, fwd_flops = 0;
    std::string variant;
};

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

/// Chunks of q_len queries after q_offset earlier tokens, each with its own key segment.
timing run(int chunks_count, ix q_len, ix q_offset, ix heads, ix head_dim,
           kc::attention_variant variant, int repeats) {
    std::vector<ix> cu_q{0}, cu_k{0}, offsets;
    for (int c = 0; c < chunks_count; ++c) {
        cu_q.push_back(cu_q.back() + q_len);
        cu_k.push_back(cu_k.back() + q_offset + q_len);
        offsets.push_back(q_offset);
    }
    kernels::attention_chunks ch;
    ch.cu_seqlens_q = cu_q;
    ch.cu_seqlens_k = cu_k;
    ch.q_offsets = offsets;
    ch.heads = heads;
    ch.head_dim = head_dim;
    ch.scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
    const ix width = heads * head_dim;
    const ix nq = cu_q.back() * width;
    const ix nk = cu_k.back() * width;
    kc::stream s;
    auto buffer = [&](ix n, std::uint64_t seed) {
        kc::device_buffer b(static_cast<std::size_t>(n) * sizeof(bf16));
        kc::fill_random(b.as<bf16>(), n, seed, 1.0f, s.get());
        return b;
    };
    auto q = buffer(nq, 1), k = buffer(nk, 2), v = buffer(nk, 3), o = buffer(nq, 4);
    auto dout = buffer(nq, 5), dq = buffer(nq, 6), dk = buffer(nk, 7), dv = buffer(nk, 8);
    kc::device_buffer lse(static_cast<std::size_t>(cu_q.back() * heads) * sizeof(float));
    kc::attention_plan plan(ch, variant, s.get());
    kc::attention_workspace ws;
    auto b = [](const kc::device_buffer& x) {
        return x.as<bf16>();
    };
    auto fwd = [&] {
        kc::attention_forward(plan, b(q), width, b(k), width, b(v), width, b(o), width,
                              lse.as<float>(), s.get());
    };
    auto bwd = [&] {
        kc::attention_backward(plan, b(q), width, b(k), width, b(v), width, b(o), width, b(dout),
                               width, lse.as<float>(), b(dq), width, b(dk), width, b(dv), width, ws,
                               s.get());
    };
    timing t;
    const void* ptrs[] = {q.data(), k.data(), v.data(), o.data()};
    const ix lds[] = {width};
    t.variant = std::string(kc::to_string(plan.resolve(ptrs, lds)));
    t.fwd_flops = plan.forward_flops();
    kc::event_timer timer;
    for (auto* phase : {&t.fwd_seconds, &t.bwd_seconds}) {
        const bool forward = phase == &t.fwd_seconds;
        forward ? fwd() : bwd(); // warm-up
        std::vector<double> seconds;
        for (int i = 0; i < repeats; ++i) {
            timer.start(s.get());
            forward ? fwd() : bwd();
            timer.stop(s.get());
            seconds.push_back(timer.seconds());
        }
        *phase = median(seconds);
    }
    return t;
}

double tflops(double flops, double seconds) {
    return seconds > 0 ? flops / seconds * 1e-12 : 0.0;
}

/// One measured shape: `chunks` chunks of q_len queries after q_offset earlier tokens, each with
/// its own q_offset + q_len keys.
struct shape {
    std::string id; ///< stable key the peer script (scripts/gpu/sdpa_peer.py) and gpu-check use
    int table = 1;
    int chunks = 1;
    ix q_len = 0, q_offset = 0, heads = 0, head_dim = 0;
    double fa3_tflops = 0; ///< published FA3 forward figure, 0 when none
    /// design.md convention: 4 * causal pairs * heads * head_dim (what attention_plan counts).
    [[nodiscard]] double forward_flops() const {
        return 4.0 * static_cast<double>(chunks) *
               static_cast<double>(runtime::causal_pairs(q_len, q_offset)) *
               static_cast<double>(heads * head_dim);
    }
};

std::vector<shape> shapes(bool quick) {
    std::vector<shape> out;
    // FA3 paper, forward, head dim 128, H100 80GB SXM5, FP16 (see the header).
    const double fa3_hd128[] = {467, 565, 625, 638, 646, 648};
    for (ix hd : {64, 128}) {
        int i = 0;
        for (ix seqlen : {512, 1024, 2048, 4096, 8192, 16384}) {
            const double fa3 = hd == 128 ? fa3_hd128[i++] : 0.0;
            if (quick && seqlen != 2048 && seqlen != 16384)
                continue;
            shape s;
            s.id = fmt::format("t1-d{}-s{}", hd, seqlen);
            s.table = 1;
            s.chunks = static_cast<int>(16384 / seqlen);
            s.q_len = seqlen;
            s.heads = 2048 / hd;
            s.head_dim = hd;
            s.fa3_tflops = fa3;
            out.push_back(s);
        }
    }
    const ix max_key_rows = ix{2} << 20; // 2M key rows: 8 GiB of K and V at width 2048
    for (ix k : {8192, 32768, 131072}) {
        for (ix q : {128, 256, 512, 2048, 8192}) {
            if (q > k || (quick && q != 128 && q != 256 && q != 2048))
                continue;
            // At most 16K queries, 2M key rows and 2^32 (query, key) pairs per shape.
            const ix by_pairs = (ix{1} << 32) / (q * k);
            shape s;
            s.id = fmt::format("t2-q{}-k{}", q, k);
            s.table = 2;
            s.chunks = static_cast<int>(
                std::max<ix>(1, std::min({16384 / q, max_key_rows / k, by_pairs})));
            s.q_len = q;
            s.q_offset = k - q;
            s.heads = 16;
            s.head_dim = 128;
            out.push_back(s);
        }
    }
    return out;
}

void usage() {
    std::fprintf(stderr, "usage: bench_cuda_attention [--repeats N] [--variant "
                         "automatic|mma|simt] [--quick] [--tsv PATH] [--list-shapes]\n");
}

} // namespace

int main(int argc, char** argv) {
    int repeats = 10;
    bool quick = false, list_shapes = false;
    std::string tsv_path;
    kc::attention_variant variant = kc::attention_variant::automatic;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--repeats") && i + 1 < argc)
            repeats = std::max(1, std::atoi(argv[++i]));
        else if (!std::strcmp(argv[i], "--quick"))
            quick = true;
        else if (!std::strcmp(argv[i], "--list-shapes"))
            list_shapes = true;
        else if (!std::strcmp(argv[i], "--tsv") && i + 1 < argc)
            tsv_path = argv[++i];
        else if (!std::strcmp(argv[i], "--variant") && i + 1 < argc) {
            const std::string v = argv[++i];
            variant = v == "mma"    ? kc::attention_variant::mma
                      : v == "simt" ? kc::attention_variant::simt
                                    : kc::attention_variant::automatic;
        } else {
            usage();
            return 2;
        }
    }
    const auto list = shapes(quick);
    if (list_shapes) { // no device needed: the shapes the peer script measures
        fmt::print("id\ttable\tchunks\tq_len\tq_offset\tk_len\theads\thead_dim\tfwd_flops\n");
        for (const auto& s : list)
            fmt::print("{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{:.0f}\n", s.id, s.table, s.chunks, s.q_len,
                       s.q_offset, s.q_offset + s.q_len, s.heads, s.head_dim, s.forward_flops());
        return 0;
    }
    const auto devices = kernels::query_devices();
    if (devices.devices.empty()) {
        fmt::print("bench_cuda_attention: skipped: {}\n", devices.reason);
        return 0;
    }
    std::FILE* tsv = nullptr;
    if (!tsv_path.empty()) {
        tsv = std::fopen(tsv_path.c_str(), "w");
        if (tsv == nullptr) {
            std::fprintf(stderr, "bench_cuda_attention: cannot write %s\n", tsv_path.c_str());
            return 2;
        }
        fmt::print(tsv, "id\tvariant\tfwd_ms\tfwd_tflops\tbwd_ms\tbwd_tflops\n");
    }
    fmt::print("device: {} (sm_{}{}); median of {} runs after one warm-up; measured\n\n",
               devices.devices[0].name, devices.devices[0].compute_major,
               devices.devices[0].compute_minor, repeats);

    int table = 0;
    for (const auto& s : list) {
        if (s.table != table) {
            table = s.table;
            if (table == 1) {
                fmt::print("Table 1: 16K tokens of documents of `seqlen`, heads x head_dim = "
                           "2048, causal\n\n");
                fmt::print("| head_dim | seqlen | docs | variant | fwd ms | fwd TFLOP/s | bwd ms | "
                           "bwd TFLOP/s | FA3 fwd TFLOP/s (published, hd 128) |\n");
                fmt::print("| ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |\n");
            } else {
                fmt::print("\nTable 2: CP chunks of q queries seeing k keys (k - q earlier "
                           "tokens), 16 heads x 128\n\n");
                fmt::print("| q | k | chunks | variant | fwd ms | fwd TFLOP/s | bwd ms | bwd "
                           "TFLOP/s |\n");
                fmt::print("| ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |\n");
            }
        }
        const auto t = run(s.chunks, s.q_len, s.q_offset, s.heads, s.head_dim, variant, repeats);
        const double fwd = tflops(t.fwd_flops, t.fwd_seconds);
        const double bwd = tflops(2.5 * t.fwd_flops, t.bwd_seconds);
        if (s.table == 1)
            fmt::print("| {} | {} | {} | {} | {:.3f} | {:.1f} | {:.3f} | {:.1f} | {} |\n",
                       s.head_dim, s.q_len, s.chunks, t.variant, t.fwd_seconds * 1e3, fwd,
                       t.bwd_seconds * 1e3, bwd,
                       s.fa3_tflops > 0 ? fmt::format("{:.0f}", s.fa3_tflops) : std::string("-"));
        else
            fmt::print("| {} | {} | {} | {} | {:.3f} | {:.1f} | {:.3f} | {:.1f} |\n", s.q_len,
                       s.q_offset + s.q_len, s.chunks, t.variant, t.fwd_seconds * 1e3, fwd,
                       t.bwd_seconds * 1e3, bwd);
        std::fflush(stdout);
        if (tsv != nullptr) {
            fmt::print(tsv, "{}\t{}\t{:.4f}\t{:.1f}\t{:.4f}\t{:.1f}\n", s.id, t.variant,
                       t.fwd_seconds * 1e3, fwd, t.bwd_seconds * 1e3, bwd);
            std::fflush(tsv);
        }
    }
    if (tsv != nullptr)
        std::fclose(tsv);
    return 0;
}
