// bench_cpu_runtime: measured (not simulated) figures of the CPU runtime's foundations.
//   1. GEMM throughput (OpenBLAS, one thread) in float and double.
//   2. Attention forward + backward on one document, per causal (query, key) pair.
//   3. A decoder step with cp=2 on a long-document-heavy micro-batch, per-sequence against
//      per-document CP chunks, measured in the same run; with the attention pairs each CP rank
//      holds, and per rank the captured seconds in attention and in CP collectives. Started by
//      mpirun with 2 ranks, the ranks are MPI processes (wlb::mpi); otherwise
//      two threads of this process over the in-process communicator.
//   4. --calibrate [MODEL] [float|double]: the CPU hardware description for the cost model,
//      now `wlbtune calibrate --backend cpu` (runtime/calibrate/cpu_probe.hpp measures,
//      tuner/cost/rate_fit.hpp fits); this option calls the same library and prints the hardware
//      JSON, for scripts that used it.
// Usage: [mpirun -np 2] bench_cpu_runtime [--quick|--full] [--default-malloc]
//        [mpirun -np 2] bench_cpu_runtime --calibrate [tiny|small|FILE] [float|double]
//   --quick: smaller sizes, for a smoke run; --default-malloc: skip retain_freed_memory()
#include "base/host_memory.hpp"
#include "kernels/ops.hpp"
#include "runtime/calibrate/cpu_probe.hpp"
#include "runtime/comm/communicator.hpp"
#include "runtime/comm/fake_communicator.hpp"
#include "runtime/parallel/batch.hpp"
#include "runtime/train/decoder.hpp"
#include "runtime/train/decoder_step.hpp"
#include "tuner/cost/hardware.hpp"
#include "tuner/cost/rate_fit.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fmt/format.h>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <vector>

using namespace wlb::runtime;
namespace k = wlb::kernels;

namespace {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t0) {
    return std::chrono::duration<double>(clock_type::now() - t0).count();
}

template <typename F>
double median_seconds(int repeats, F&& f) {
    std::vector<double> s;
    for (int r = 0; r < repeats; ++r) {
        const auto t0 = clock_type::now();
        f();
        s.push_back(seconds_since(t0));
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

template <typename T>
void bench_gemm(k::index n, const char* type) {
    auto a = random_values<T>(static_cast<std::size_t>(n * n), 1);
    auto b = random_values<T>(static_cast<std::size_t>(n * n), 2);
    std::vector<T> c(static_cast<std::size_t>(n * n));
    const double s = median_seconds(5, [&] {
        k::gemm<T>(false, false, n, n, n, T(1), a.data(), n, b.data(), n, T(0), c.data(), n);
    });
    fmt::print("| gemm {}x{}x{} | {} | {:.4f} s | {:.1f} GFLOP/s |\n", n, n, n, type, s,
               2.0 * static_cast<double>(n * n * n) / s / 1e9);
}

void bench_attention(k::index doc_tokens, k::index heads, k::index head_dim) {
    const k::index width = heads * head_dim;
    const auto rows = static_cast<std::size_t>(doc_tokens * width);
    auto q = random_values<float>(rows, 3), kk = random_values<float>(rows, 4),
         v = random_values<float>(rows, 5), dout = random_values<float>(rows, 6);
    std::vector<float> out(rows), dq(rows), dk(rows), dv(rows);
    std::vector<float> lse(static_cast<std::size_t>(doc_tokens * heads));
    const std::vector<k::index> cu = {0, doc_tokens}, off = {0};
    const k::attention_chunks ch{cu,    cu,       off,
                                 heads, head_dim, 1.0 / std::sqrt(static_cast<double>(head_dim))};
    const double fwd = median_seconds(3, [&] {
        k::attention_forward<float>(ch, q.data(), width, kk.data(), width, v.data(), width,
                                    out.data(), width, lse.data());
    });
    const double bwd = median_seconds(3, [&] {
        k::attention_backward<float>(ch, q.data(), width, kk.data(), width, v.data(), width,
                                     out.data(), width, dout.data(), width, lse.data(), dq.data(),
                                     width, dk.data(), width, dv.data(), width);
    });
    const double pairs = static_cast<double>(causal_pairs(doc_tokens)) * static_cast<double>(heads);
    // FLOP convention (design.md): forward 4 * pairs * head_dim (QK^T and PV), backward 2.5x.
    const double flops = 4.0 * pairs * static_cast<double>(head_dim);
    fmt::print("| attention fwd, doc {} tokens, {} heads x {} | float | {:.4f} s | {:.1f} GFLOP/s, "
               "{:.2f} ns per pair-head |\n",
               doc_tokens, heads, head_dim, fwd, flops / fwd / 1e9, fwd / pairs * 1e9);
    fmt::print("| attention bwd, doc {} tokens, {} heads x {} | float | {:.4f} s | {:.1f} GFLOP/s "
               "(2.5x fwd convention), {:.2f} ns per pair-head |\n",
               doc_tokens, heads, head_dim, bwd, 2.5 * flops / bwd / 1e9, bwd / pairs * 1e9);
}

// Sums the captured operations of one rank: attention compute, and time in CP collectives
// (the all-gather of K/V, the reduce-scatter of dK/dV, the CP gradient all-reduce), which is
// mostly waiting for the slower CP peer.
struct time_split final : step_observer {
    double attention_seconds = 0;
    double cp_seconds = 0;
    void record(const op_record& op) override {
        if (op.name.starts_with("attention"))
            attention_seconds += static_cast<double>(op.dur_ns) * 1e-9;
        if (op.lane == op_lane::cp)
            cp_seconds += static_cast<double>(op.dur_ns) * 1e-9;
    }
};

// Hand-built CP chunk lists (the policies live in tuner/, issue [sharding]).
sharded_micro_batch per_seq(const micro_batch& mb, int cp) {
    sharded_micro_batch s;
    s.ranks.resize(static_cast<std::size_t>(cp));
    const std::int64_t total = mb.tokens();
    for (int r = 0; r < cp; ++r)
        for (int p : {r, 2 * cp - 1 - r}) {
            const std::int64_t b = total * p / (2 * cp), e = total * (p + 1) / (2 * cp);
            std::int64_t start = 0;
            for (const auto& d : mb.docs) {
                const std::int64_t lo = std::max(b, start), hi = std::min(e, start + d.tokens);
                if (hi > lo)
                    s.ranks[static_cast<std::size_t>(r)].chunks.push_back(
                        {d.id, lo - start, hi - lo});
                start += d.tokens;
            }
        }
    return s;
}

sharded_micro_batch per_doc(const micro_batch& mb, int cp) {
    sharded_micro_batch s;
    s.ranks.resize(static_cast<std::size_t>(cp));
    for (int r = 0; r < cp; ++r)
        for (const auto& d : mb.docs)
            for (int p : {r, 2 * cp - 1 - r}) {
                const std::int64_t b = d.tokens * p / (2 * cp), e = d.tokens * (p + 1) / (2 * cp);
                if (e > b)
                    s.ranks[static_cast<std::size_t>(r)].chunks.push_back({d.id, b, e - b});
            }
    return s;
}

void bench_cp_step(bool quick, communicator* mpi_world) {
    decoder_config config;
    config.vocab = 512;
    config.hidden = 256;
    config.heads = 4;
    config.ffn = 512;
    config.layers = 2;
    const auto params = init_decoder_params<float>(config, 1);
    // Long-document-heavy pack: one long document first, short ones after it.
    const std::int64_t long_tokens = quick ? 768 : 3072;
    micro_batch mb;
    mb.docs.push_back({0, long_tokens, 0});
    for (int i = 1; i <= 4; ++i)
        mb.docs.push_back({i, long_tokens / 12, 0});
    global_batch batch;
    batch.replicas.push_back({{mb}});
    const int cp = 2;
    for (const char* name : {"per_seq", "per_doc"}) {
        const auto shard = std::strcmp(name, "per_seq") == 0 ? per_seq(mb, cp) : per_doc(mb, cp);
        std::vector<std::int64_t> pairs(cp, 0);
        for (int r = 0; r < cp; ++r)
            for (const auto& c : shard.ranks[static_cast<std::size_t>(r)].chunks)
                pairs[static_cast<std::size_t>(r)] += causal_pairs(c.q_tokens, c.q_offset);
        const batch_shards shards = {{shard}};
        std::vector<time_split> split(static_cast<std::size_t>(cp));
        auto step = [&](communicator& world) {
            fake_world solo(1);
            auto one = solo.communicator_for(0);
            parallel_groups groups{*one, world, *one};
            groups.observer = &split[static_cast<std::size_t>(world.rank())];
            (void)compute_step_gradients<float>(config, params, batch, shards, groups);
        };
        const double s = median_seconds(quick ? 1 : 3, [&] {
            if (mpi_world != nullptr) {
                mpi_world->barrier();
                step(*mpi_world); // ends in collectives: rank 0 finishes after every rank
            } else {
                fake_world::run(cp, 600.0, step);
            }
        });
        // Per CP rank: seconds in attention and waiting in CP collectives, per step.
        const int repeats = quick ? 1 : 3;
        std::vector<double> per_rank(static_cast<std::size_t>(2 * cp), 0.0);
        for (int r = 0; r < cp; ++r) {
            if (mpi_world != nullptr && r != mpi_world->rank())
                continue;
            per_rank[static_cast<std::size_t>(2 * r)] =
                split[static_cast<std::size_t>(r)].attention_seconds / repeats;
            per_rank[static_cast<std::size_t>(2 * r + 1)] =
                split[static_cast<std::size_t>(r)].cp_seconds / repeats;
        }
        if (mpi_world != nullptr)
            mpi_world->all_reduce(std::span<double>(per_rank));
        if (mpi_world != nullptr && mpi_world->rank() != 0)
            continue;
        fmt::print("| decoder step cp=2 ({}), {} tokens, {} | float | {:.3f} s | "
                   "causal pairs per CP rank {} / {} (max/mean {:.2f}) |\n",
                   mpi_world != nullptr ? "2 MPI ranks" : "2 threads", mb.tokens(), name, s,
                   pairs[0], pairs[1],
                   2.0 * static_cast<double>(std::max(pairs[0], pairs[1])) /
                       static_cast<double>(pairs[0] + pairs[1]));
        fmt::print("| ... captured, {} | float | per step | attention {:.3f} s / {:.3f} s, "
                   "waiting in CP collectives {:.3f} s / {:.3f} s (rank 0 / rank 1) |\n",
                   name, per_rank[0], per_rank[2], per_rank[1], per_rank[3]);
    }
}

} // namespace

int main(int argc, char** argv) {
    bool quick = false;
    bool default_malloc = false;
    for (int i = 1; i < argc; ++i) {
        quick = quick || std::strcmp(argv[i], "--quick") == 0;
        default_malloc = default_malloc || std::strcmp(argv[i], "--default-malloc") == 0;
    }
    k::set_blas_threads(1);
    const bool retained = !default_malloc && wlb::retain_freed_memory();
    std::unique_ptr<communicator> mpi_world;
    if (detect_launch().size > 1) {
        mpi_world = make_world_communicator({.watchdog_seconds = 600.0});
        if (mpi_world->size() != 2) {
            fmt::print(stderr, "bench_cpu_runtime: start it with 2 MPI ranks (or none)\n");
            return 2;
        }
    }
    for (int i = 1; i < argc; ++i)
        if (std::strcmp(argv[i], "--calibrate") == 0) {
            const auto m = load_model(i + 1 < argc ? argv[i + 1] : "small");
            cpu_probe_options o;
            o.numbers = i + 2 < argc && std::strcmp(argv[i + 2], "double") == 0 ? precision::f64
                                                                                : precision::f32;
            fake_world solo(1);
            auto self = solo.communicator_for(0);
            communicator& world = mpi_world ? *mpi_world : *self;
            const auto samples = measure_cpu(m, world, o);
            const auto hw =
                wlb::tuner::fit_hardware(samples, wlb::tuner::hardware_preset("cpu-dev-vm"),
                                         {.attention_tile = 1, .name = "cpu-calibrated"})
                    .hardware;
            if (world.rank() == 0)
                fmt::print("{}\n", wlb::tuner::to_json(hw).dump(2));
            return 0;
        }
    if (mpi_world == nullptr || mpi_world->rank() == 0) {
        fmt::print("allocator: {}\n\n",
                   retained ? "freed memory retained (retain_freed_memory)" : "C library defaults");
        fmt::print("| what | type | median time | figure |\n|---|---|---|---|\n");
    }
    if (mpi_world == nullptr) {
        bench_gemm<float>(quick ? 128 : 512, "float");
        bench_gemm<double>(quick ? 128 : 512, "double");
        bench_attention(quick ? 256 : 2048, 4, 64);
    }
    bench_cp_step(quick, mpi_world.get());
    return 0;
}
