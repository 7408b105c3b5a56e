// Document-source throughput: documents/s and MB/s reading a large generated Megatron .idx and
// the shared JSON reference file. Usage: bench_sources [DOCUMENTS (default 50000000)] [DIR
// (default /tmp)]. The .idx (one sequence per document, lengths from a fixed seed) is written
// to DIR, read back (page cache warm, as it was just written), and removed. Figures go to
// docs/benchmarks.md.
#include "tuner/data/document_stream.hpp"
#include "tuner/data/megatron_idx_source.hpp"
#include "tuner/data/text_sources.hpp"

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fmt/format.h>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t0) {
    return std::chrono::duration<double>(clock_type::now() - t0).count();
}

template <typename T>
void put(std::FILE* f, const std::vector<T>& v) {
    if (std::fwrite(v.data(), sizeof(T), v.size(), f) != v.size())
        throw std::runtime_error("write failed");
}

// Streams an .idx with n one-sequence documents to `path` in blocks.
void write_idx(const std::string& path, std::uint64_t n) {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (!f)
        throw std::runtime_error("cannot create " + path);
    std::fwrite("MMIDIDX\0\0", 1, 9, f);
    const std::uint64_t version = 1, d = n + 1;
    const std::uint8_t dtype = 8; // uint16
    std::fwrite(&version, 8, 1, f);
    std::fwrite(&dtype, 1, 1, f);
    std::fwrite(&n, 8, 1, f);
    std::fwrite(&d, 8, 1, f);
    constexpr std::uint64_t block = 1 << 20;
    std::mt19937_64 rng(1);
    std::vector<std::int32_t> lengths;
    std::vector<std::int64_t> pointers, bounds;
    std::vector<std::int32_t> all_lengths_block;
    std::int64_t pointer = 0;
    // lengths
    for (std::uint64_t i = 0; i < n; i += block) {
        lengths.resize(std::min(block, n - i));
        for (auto& l : lengths)
            l = 1 + static_cast<std::int32_t>(rng() % 8192);
        put(f, lengths);
    }
    // pointers (regenerate the same lengths)
    rng.seed(1);
    for (std::uint64_t i = 0; i < n; i += block) {
        pointers.resize(std::min(block, n - i));
        for (auto& p : pointers) {
            p = pointer;
            pointer += 2 * (1 + static_cast<std::int64_t>(rng() % 8192));
        }
        put(f, pointers);
    }
    for (std::uint64_t i = 0; i <= n; i += block) {
        bounds.resize(std::min(block, n + 1 - i));
        for (std::uint64_t k = 0; k < bounds.size(); ++k)
            bounds[k] = static_cast<std::int64_t>(i + k);
        put(f, bounds);
    }
    if (std::fclose(f) != 0)
        throw std::runtime_error("close failed");
}

} // namespace

int main(int argc, char** argv) {
    const std::uint64_t n = argc > 1 ? std::stoull(argv[1]) : 50'000'000ULL;
    const std::string dir = argc > 2 ? argv[2] : "/tmp";
    const std::string idx = fmt::format("{}/wlb_bench_{}.idx", dir, ::getpid());

    auto t0 = clock_type::now();
    write_idx(idx, n);
    const double write_s = seconds_since(t0);
    const auto bytes = std::filesystem::file_size(idx);
    fmt::print("generated {} ({} documents, {:.1f} MB) in {:.2f} s\n", idx, n, bytes / 1e6,
               write_s);

    fmt::print("{:<34} {:>12} {:>10} {:>14} {:>10}\n", "source", "documents", "seconds",
               "documents/s", "MB/s");
    const auto row = [](std::string_view name, std::int64_t docs, double s, double mb) {
        fmt::print("{:<34} {:>12} {:>10.3f} {:>14.3e} {:>10.0f}\n", name, docs, s, docs / s,
                   mb / s);
    };
    for (int rep = 0; rep < 3; ++rep) {
        t0 = clock_type::now();
        wlb::tuner::megatron_idx_source src(idx);
        std::int64_t docs = 0, tokens = 0;
        while (auto l = src.next())
            ++docs, tokens += *l;
        row("idx: megatron_idx_source::next", docs, seconds_since(t0), bytes / 1e6);
        if (docs != static_cast<std::int64_t>(n))
            return 1;
    }
    {
        t0 = clock_type::now();
        wlb::tuner::document_stream s(
            std::make_unique<wlb::tuner::megatron_idx_source>(idx),
            {.context_tokens = 4096, .policy = wlb::tuner::context_policy::split});
        std::int64_t docs = 0;
        while (s.next(0))
            ++docs;
        row("idx: document_stream split 4K", docs, seconds_since(t0), bytes / 1e6);
    }
    std::filesystem::remove(idx);

    const std::string json = std::string(WLB_SHARED_DATA_DIR) + "/wlbllm_doc_lengths.json";
    if (!std::filesystem::exists(json)) {
        fmt::print("skipped the JSON reference: {} is absent\n", json);
        return 0;
    }
    const double json_mb = std::filesystem::file_size(json) / 1e6;
    for (int rep = 0; rep < 5; ++rep) {
        t0 = clock_type::now();
        auto src = wlb::tuner::open_json_lengths(json);
        std::int64_t docs = 0;
        while (src->next())
            ++docs;
        row("json: open_json_lengths + next", docs, seconds_since(t0), json_mb);
    }
    return 0;
}
