// The injection library's host-side costs, without a GPU (docs/profile.md, "Overhead"): what an
// NVTX push and pop costs the job's thread (an op range the rules drop, a range that opens a
// context), and how fast a process's records become its trace file at a window's end.
//
//   bench_inject [--ranges N] [--records N]
//
// Prints a table of CPU time (this thread's, so that a shared machine's load does not count) and
// wall time; timings, not a test.
#include "profiler/capture/inject/nvtx_ranges.hpp"
#include "profiler/capture/inject/process_capture.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <string>
#include <unistd.h>

namespace pf = wlb::profiler;

namespace {

struct clock_pair {
    double cpu = 0.0;
    std::chrono::steady_clock::time_point wall;
};

clock_pair clock_now() {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return {static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec),
            std::chrono::steady_clock::now()};
}

/// "| what | count | cpu ns each | wall ns each |" for `count` operations since `t0`.
void print_row(const char* what, long count, const clock_pair& t0) {
    const auto t1 = clock_now();
    const double wall = std::chrono::duration<double>(t1.wall - t0.wall).count();
    std::printf("| %s | %ld | %.0f | %.0f |\n", what, count,
                1e9 * (t1.cpu - t0.cpu) / static_cast<double>(count),
                1e9 * wall / static_cast<double>(count));
}

} // namespace

int main(int argc, char** argv) {
    long ranges = 2'000'000;
    long records = 1'000'000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (std::strcmp(argv[i], "--ranges") == 0)
            ranges = std::atol(argv[i + 1]);
        else if (std::strcmp(argv[i], "--records") == 0)
            records = std::atol(argv[i + 1]);
    }
    std::printf("| what | count | CPU ns each | wall ns each |\n| --- | ---: | ---: | ---: |\n");
    {
        pf::nvtx_tracker t{pf::range_rules()};
        const std::string op = "aten::addmm, seq = 1234, sizes = [[4096, 1024], [1024, 4096]]";
        auto start = clock_now();
        for (long i = 0; i < ranges; ++i) {
            t.push(1, op, i);
            t.pop(1, i);
        }
        print_row("NVTX push + pop, an op range (dropped)", ranges, start);
        start = clock_now();
        const long kept = ranges / 10;
        for (long i = 0; i < kept; ++i) {
            t.push(1, "forward", i);
            t.pop(1, i);
        }
        print_row("NVTX push + pop, a kept range (\"forward\")", kept, start);
    }
    {
        const auto dir = std::filesystem::temp_directory_path() /
                         ("wlb-bench-inject-" + std::to_string(::getpid()));
        std::filesystem::create_directory(dir);
        std::filesystem::permissions(dir, std::filesystem::perms::owner_all,
                                     std::filesystem::perm_options::replace);
        pf::inject_config c;
        c.capture_dir = dir.string();
        c.max_records = records;
        pf::process_meta meta;
        meta.pid = ::getpid();
        pf::process_recorder rec(c, meta);
        rec.open_window({0, -1, "start", "", 0, 0, 0});
        const long per_step = 10'000;
        std::int64_t now = 0;
        std::uint32_t corr = 0;
        for (long s = 0; s * per_step < records; ++s) {
            const auto step = rec.nvtx().push(1, "train_step", now);
            pf::capture_batch b;
            for (long k = 0; k < per_step && s * per_step + k < records; ++k) {
                const bool nccl = k % 50 == 49;
                b.activities.push_back(
                    {pf::activity_kind::kernel,
                     nccl ? "ncclDevKernel_AllReduce_Sum_bf16_RING_LL"
                          : (k % 3 == 0 ? "flash_fwd_kernel" : "sm90_xmma_gemm_bf16bf16_bf16f32"),
                     now, now + 900, 0, nccl ? 9u : 7u, ++corr, 0});
                b.links.push_back({corr, step});
                now += 1'000;
            }
            rec.nvtx().pop(1, now);
            rec.add(std::move(b));
        }
        rec.close_window(now, "end");
        const auto start = clock_now();
        const auto problem = rec.write();
        print_row("records to trace file and report (write)", records, start);
        if (!problem.empty())
            std::printf("\nwrite failed: %s\n", problem.c_str());
        std::filesystem::remove_all(dir);
    }
    return 0;
}
