// Benchmark of `wlbtune analyze` ingestion: throughput (MB of Kineto JSON per CPU second on one
// core, and wall) and peak memory (getrusage max RSS) on a large generated PyTorch profiler trace.
//
// Writes RANKS Kineto files of about MB_PER_RANK megabytes each into a fresh directory under
// /tmp (the event mix of a real Megatron step: CPU ops with their args, launches, GEMM /
// FlashAttention / element-wise kernels, NCCL kernels under both namings with their
// record_param_comms metadata, ProfilerStep ranges; Kineto's multi-line layout), reads them one
// rank at a time through the analyze ingestion, runs the breakdown and straggler analysis, prints
// a table and removes the files (unless --keep).
//
//   bench_analyze [--ranks 8] [--mb-per-rank 160] [--kernels-per-step 4000] [--gzip]
//                 [--dir /tmp] [--keep] [--write-only DIR]
//
// --write-only DIR writes the files into DIR and stops (the 16K-rank job of docs/benchmarks.md is
// written so, then timed as `wlbtune analyze DIR` under /usr/bin/time).
#include "profiler/analysis/analysis.hpp"
#include "profiler/analysis/breakdown.hpp"
#include "profiler/analysis/stragglers.hpp"
#include "profiler/ingest/collectives.hpp"
#include "profiler/ingest/ingest.hpp"
#include "profiler/ingest/rank_condense.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fmt/format.h>
#include <random>
#include <string>
#include <sys/resource.h>
#include <vector>
#include <zlib.h>

namespace {

namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

double max_rss_mb() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_maxrss) / 1024.0; // Linux: kilobytes
}

std::string us(std::int64_t ns) {
    return fmt::format("{}.{:03d}", ns / 1000, ns % 1000);
}

class sink {
public:
    sink(const std::string& path, bool gzip) : m_gzip(gzip) {
        if (gzip)
            m_gz = gzopen(path.c_str(), "wb1");
        else
            m_f = std::fopen(path.c_str(), "wb");
        if (!m_gz && !m_f) {
            std::fprintf(stderr, "cannot write %s\n", path.c_str());
            std::exit(1);
        }
    }
    ~sink() { close(); }
    void write(const std::string& s) {
        m_buf += s;
        if (m_buf.size() > (1 << 22))
            flush();
    }
    void close() {
        flush();
        if (m_gz)
            gzclose(static_cast<gzFile>(m_gz));
        if (m_f)
            std::fclose(m_f);
        m_gz = nullptr;
        m_f = nullptr;
    }
    std::int64_t bytes() const { return m_bytes; }

private:
    void flush() {
        if (m_buf.empty())
            return;
        if (m_gz)
            gzwrite(static_cast<gzFile>(m_gz), m_buf.data(), static_cast<unsigned>(m_buf.size()));
        else
            std::fwrite(m_buf.data(), 1, m_buf.size(), m_f);
        m_bytes += static_cast<std::int64_t>(m_buf.size());
        m_buf.clear();
    }
    bool m_gzip;
    void* m_gz = nullptr;
    std::FILE* m_f = nullptr;
    std::string m_buf;
    std::int64_t m_bytes = 0;
};

// One rank's file, about `target` bytes of JSON. Returns the JSON bytes written.
std::int64_t write_rank(const std::string& path, int rank, int ranks, std::int64_t target,
                        bool gzip, int kernels_per_step) {
    sink out(path, gzip);
    std::mt19937 rng(static_cast<unsigned>(rank) * 7919u + 1);
    std::uniform_int_distribution<int> jitter(0, 2000);
    out.write(fmt::format(
        "{{\n  \"schemaVersion\": 1,\n  \"deviceProperties\": [\n    {{\"id\": 0, \"name\": "
        "\"NVIDIA H100 80GB HBM3\", \"totalGlobalMem\": 85045870592}}\n  ],\n  "
        "\"distributedInfo\": {{\"backend\": \"nccl\", \"rank\": {}, \"world_size\": {}}},\n  "
        "\"record_shapes\": 1,\n  \"traceEvents\": [\n",
        rank, ranks));
    const std::string tp_ranks = fmt::format("[{}, {}]", rank - rank % 2, rank - rank % 2 + 1);
    std::int64_t t = 1'000'000'000, corr = 1, ext = 1;
    bool first = true;
    auto emit = [&](const std::string& s) {
        out.write(first ? "  " : ",\n  ");
        out.write(s);
        first = false;
    };
    const char* kernels[] = {
        "sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x256x64_warpgroupsize2x1x1_execute_"
        "segment_k_off_kernel__5x_cublas",
        "void flash::flash_fwd_kernel<Flash_fwd_kernel_traits<128, 128, 64, 4, false, false, "
        "cutlass::bfloat16_t>, false, true, false, false, true, false, false>(Flash_fwd_params)",
        "void at::native::vectorized_elementwise_kernel<4, at::native::CUDAFunctor_add<c10::"
        "BFloat16>, at::detail::Array<char*, 3> >(int, at::native::CUDAFunctor_add<c10::BFloat16>,"
        " at::detail::Array<char*, 3>)",
        "void (anonymous namespace)::softmax_warp_forward<c10::BFloat16, c10::BFloat16, float, 10,"
        " false, false>(c10::BFloat16*, c10::BFloat16 const*, int, int, int, bool const*, int, "
        "bool)"};
    int step = 0;
    std::int64_t step_start = t;
    auto close_step = [&] {
        emit(fmt::format(
            "{{\n    \"ph\": \"X\", \"cat\": \"user_annotation\", \"name\": "
            "\"ProfilerStep#{}\", \"pid\": 1234, \"tid\": 1234,\n    \"ts\": {}, \"dur\": "
            "{},\n    \"args\": {{\n      \"External id\": {}, \"Record function id\": 0, "
            "\"Ev Idx\": {}\n    }}\n  }}",
            step, us(step_start), us(t - step_start), ext++, ext));
        ++step;
    };
    std::int64_t k = 0;
    for (; out.bytes() < target; ++k) {
        if (k % kernels_per_step == 0) {
            if (k > 0)
                close_step();
            step_start = t;
        }
        const int kind = static_cast<int>(k % 10);
        const bool nccl = kind == 9;
        // The CPU op that launches the kernel, with the args a shape-recording profile writes.
        emit(fmt::format(
            "{{\n    \"ph\": \"X\", \"cat\": \"cpu_op\", \"name\": \"{}\", \"pid\": 1234, \"tid\": "
            "1234,\n    \"ts\": {}, \"dur\": 12.345,\n    \"args\": {{\n      \"External id\": "
            "{},\"Record function id\": 0, \"Ev Idx\": {}, \"Input Dims\": [[8192, 4096], [4096, "
            "4096], []], \"Input type\": [\"c10::BFloat16\", \"c10::BFloat16\", \"\"], \"Input "
            "Strides\": [[4096, 1], [1, 4096], []], \"Concrete Inputs\": [\"\", \"\", \"\"], "
            "\"Sequence number\": {}, \"Fwd thread id\": 0\n    }}\n  }}",
            nccl ? "record_param_comms" : (kind < 4 ? "aten::mm" : "aten::add"), us(t), ext, ext,
            k));
        if (nccl)
            emit(fmt::format(
                "{{\n    \"ph\": \"X\", \"cat\": \"cpu_op\", \"name\": \"record_param_comms\", "
                "\"pid\": 1234, \"tid\": 1234,\n    \"ts\": {}, \"dur\": 20.000,\n    \"args\": "
                "{{\n      \"External id\": {}, \"Collective name\": \"allreduce\", \"dtype\": "
                "\"BFloat16\", \"In msg nelems\": 16777216, \"Out msg nelems\": 16777216, \"Group "
                "size\": 2, \"Process Group Name\": \"1\", \"Process Group Description\": "
                "\"undescribed\", \"Process Group Ranks\": \"{}\"\n    }}\n  }}",
                us(t + 1000), ext, tp_ranks));
        ++ext;
        emit(fmt::format(
            "{{\n    \"ph\": \"X\", \"cat\": \"cuda_runtime\", \"name\": \"cudaLaunchKernel\", "
            "\"pid\": 1234, \"tid\": 1234,\n    \"ts\": {}, \"dur\": 4.321,\n    \"args\": {{\n   "
            "   \"External id\": {}, \"cbid\": 211, \"correlation\": {}\n    }}\n  }}",
            us(t + 2000), ext, corr));
        const std::int64_t dur = 20'000 + jitter(rng) * 10;
        const std::string name = nccl ? (rank % 2 ? "ncclDevKernel_AllReduce_Sum_bf16_RING_LL"
                                                  : "ncclKernel_AllReduce_RING_LL_Sum_bfloat16")
                                      : kernels[kind % 4];
        emit(fmt::format(
            "{{\n    \"ph\": \"X\", \"cat\": \"kernel\", \"name\": \"{}\", \"pid\": 0, \"tid\": {},"
            "\n    \"ts\": {}, \"dur\": {},\n    \"args\": {{\n      \"External id\": {},\n      "
            "\"queued\": 0, \"device\": 0, \"context\": 1,\n      \"stream\": {}, \"correlation\":"
            " {},\n      \"registers per thread\": 168, \"shared memory\": 114688, \"blocks per "
            "SM\": 1.21, \"warps per SM\": 9.70, \"grid\": [132, 1, 1], \"block\": [384, 1, 1], "
            "\"est. achieved occupancy %\": 19\n    }}\n  }}",
            name, nccl ? 20 : 7, us(t + 5000), us(dur), ext, nccl ? 20 : 7, corr));
        ++corr;
        t += dur + 8000;
    }
    if (k % kernels_per_step != 0)
        close_step(); // the last step, cut where the file ends
    out.write("\n  ],\n  \"traceName\": \"bench\",\n  \"displayTimeUnit\": \"ms\",\n  "
              "\"baseTimeNanoseconds\": 1700000000000000000\n}\n");
    out.close();
    return out.bytes();
}

// User and system CPU seconds of the process so far.
std::pair<double, double> cpu_seconds() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    auto s = [](const timeval& t) {
        return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) * 1e-6;
    };
    return {s(u.ru_utime), s(u.ru_stime)};
}

struct timing {
    double wall_s = 0.0, cpu_s = 0.0, user_s = 0.0;
};

template <typename F>
timing timed(F&& f) {
    const auto w = clock_type::now();
    const auto [u0, s0] = cpu_seconds();
    f();
    const auto [u1, s1] = cpu_seconds();
    return {std::chrono::duration<double>(clock_type::now() - w).count(), (u1 - u0) + (s1 - s0),
            u1 - u0};
}

} // namespace

int main(int argc, char** argv) {
    int ranks = 8;
    double mb_per_rank = 160;
    int kernels_per_step = 4000;
    bool gzip = false, keep = false;
    std::string base = "/tmp", write_only;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--ranks" && i + 1 < argc)
            ranks = std::atoi(argv[++i]);
        else if (a == "--mb-per-rank" && i + 1 < argc)
            mb_per_rank = std::atof(argv[++i]);
        else if (a == "--kernels-per-step" && i + 1 < argc)
            kernels_per_step = std::max(1, std::atoi(argv[++i]));
        else if (a == "--gzip")
            gzip = true;
        else if (a == "--keep")
            keep = true;
        else if (a == "--dir" && i + 1 < argc)
            base = argv[++i];
        else if (a == "--write-only" && i + 1 < argc)
            write_only = argv[++i];
        else {
            std::fprintf(stderr,
                         "usage: bench_analyze [--ranks N] [--mb-per-rank M] [--kernels-per-step "
                         "K] [--gzip] [--dir D] [--keep] [--write-only DIR]\n");
            return 2;
        }
    }
    fs::path dir;
    if (!write_only.empty()) {
        dir = write_only;
        fs::create_directories(dir);
    } else {
        std::string tmpl = (fs::path(base) / "wlb_bench_analyze.XXXXXX").string();
        if (!::mkdtemp(tmpl.data())) {
            std::perror("mkdtemp");
            return 1;
        }
        dir = tmpl;
    }
    fmt::print("generating {} Kineto files of {:.2f} MB{} in {}\n", ranks, mb_per_rank,
               gzip ? " (gzip)" : "", dir.string());
    std::vector<std::string> paths;
    std::int64_t json_bytes = 0;
    const auto g0 = clock_type::now();
    for (int r = 0; r < ranks; ++r) {
        const auto p =
            (dir / fmt::format("worker{}.pt.trace.json{}", r, gzip ? ".gz" : "")).string();
        json_bytes += write_rank(p, r, ranks, static_cast<std::int64_t>(mb_per_rank * 1e6), gzip,
                                 kernels_per_step);
        paths.push_back(p);
    }
    const double gen_s = std::chrono::duration<double>(clock_type::now() - g0).count();
    std::int64_t disk = 0;
    for (const auto& p : paths)
        disk += static_cast<std::int64_t>(fs::file_size(p));
    fmt::print("generated {:.1f} MB of JSON ({:.1f} MB on disk) in {:.1f} s\n\n", json_bytes / 1e6,
               disk / 1e6, gen_s);
    if (!write_only.empty())
        return 0;
    const double rss_before = max_rss_mb();
    const double mb = json_bytes / 1e6;

    // Ingestion on one thread. The first file pays for allocating and faulting in the text
    // buffer and the parser's index (cold); the reader then keeps both, so the other files show
    // the steady state (warm), timed one by one through the reader and the condensing that
    // ingest runs on each. CPU time is reported beside wall time: on a shared machine the wall
    // time counts other jobs' turns; user time beside it (system time is page faults and read
    // copies).
    wlb::profiler::ingest_options o;
    o.threads = 1;
    o.job_layout = ranks % 2 == 0 ? wlb::runtime::layout(2, 1, 1, ranks / 2)
                                  : wlb::runtime::layout(1, 1, 1, ranks);
    wlb::profiler::job_trace full;
    const auto ingest_t = timed([&] { full = wlb::profiler::ingest(paths, o); });
    const double first_mb = static_cast<double>(fs::file_size(paths.front())) / 1e6;
    const auto first_t = timed([&] {
        wlb::profiler::trace_part part;
        wlb::profiler::read_kineto_file(paths.front(), part);
    });
    timing warm;
    double warm_mb = 0.0;
    for (std::size_t r = 1; r < paths.size(); ++r) {
        const auto t = timed([&] {
            wlb::profiler::trace_part part;
            wlb::profiler::read_kineto_file(paths[r], part);
            for (auto& e : part.ranks)
                wlb::profiler::condense_rank(e.trace, part, "bench", false);
        });
        warm.wall_s += t.wall_s;
        warm.cpu_s += t.cpu_s;
        warm.user_s += t.user_s;
        warm_mb += static_cast<double>(fs::file_size(paths[r])) / 1e6;
    }
    std::vector<wlb::profiler::collective_instance> inst;
    std::vector<wlb::profiler::step_breakdown> bd;
    const auto analysis_t = timed([&] {
        const wlb::profiler::step_index index(full);
        inst = wlb::profiler::match_collectives(full);
        bd = wlb::profiler::compute_breakdown(full);
        (void)wlb::profiler::find_stragglers(full, index, inst);
    });
    const double rss_end = max_rss_mb();

    fmt::print("| measure | value |\n| --- | --- |\n");
    fmt::print("| input | {} ranks, {:.1f} MB of Kineto JSON{} ({:.1f} MB per rank), {} GPU "
               "events read, {} records kept |\n",
               ranks, mb, gzip ? " gzip-compressed" : "", mb / ranks, full.event_count(),
               full.record_count());
    fmt::print("| ingest --threads 1, all files | {:.2f} s wall, {:.2f} s CPU ({:.2f} s user): "
               "{:.0f} MB/s per CPU second |\n",
               ingest_t.wall_s, ingest_t.cpu_s, ingest_t.user_s, mb / ingest_t.cpu_s);
    fmt::print("| reader, the first file (cold) | {:.2f} s wall, {:.2f} s CPU: {:.0f} MB/s per "
               "CPU second |\n",
               first_t.wall_s, first_t.cpu_s, first_mb / first_t.cpu_s);
    if (ranks > 1)
        fmt::print("| reader + condense, the other files (warm, one core) | {:.2f} s wall, {:.2f} "
                   "s CPU ({:.2f} s user): {:.0f} MB/s per CPU second, {:.0f} MB/s per user "
                   "second, {:.0f} MB/s wall |\n",
                   warm.wall_s, warm.cpu_s, warm.user_s, warm_mb / warm.cpu_s,
                   warm_mb / warm.user_s, warm_mb / warm.wall_s);
    fmt::print("| breakdown + stragglers | {:.2f} s CPU ({} steps, {} matched collectives) |\n",
               analysis_t.cpu_s, bd.size(), inst.size());
    fmt::print("| peak RSS | {:.0f} MB ({:.0f} MB before reading); largest file {:.0f} MB of JSON "
               "|\n",
               rss_end, rss_before, mb / ranks);
    if (!keep) {
        std::error_code ec;
        fs::remove_all(dir, ec);
    } else {
        fmt::print("kept {}\n", dir.string());
    }
    return 0;
}
