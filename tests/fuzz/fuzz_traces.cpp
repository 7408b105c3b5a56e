// Fuzz target: the trace readers of `wlbtune analyze` (profiler/ingest), each through
// profiler::analyze as the command calls it (ingest on one thread, the clock alignment, the
// breakdown, stragglers and attribution). The first byte picks the reader, the rest is the file:
//   0 kineto    PyTorch profiler Chrome-trace JSON (input.pt.trace.json)
//   1 megatron  timer timeline, Chrome-trace JSON
//   2 perfetto  wlbtune's own Perfetto JSON export
//   3 wlbtune   a trace directory: the rest split at each line "--8<--" into manifest.json,
//               rank_00000.jsonl, rank_00001.jsonl and batches.json (missing parts: no file)
//   4 auto      format detection on input.json
#include "fuzz_support.hpp"
#include "profiler/analysis/analysis.hpp"
#include "profiler/ingest/ingest.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace {

// Writes the wlbtune trace directory's parts and returns its path.
std::string write_trace_dir(std::string_view rest) {
    namespace fs = std::filesystem;
    const fs::path dir = wlb::fuzz::scratch_dir() / "trace";
    std::error_code ec;
    fs::remove_all(dir, ec);
    fs::create_directory(dir);
    static constexpr std::array<const char*, 4> names = {"manifest.json", "rank_00000.jsonl",
                                                         "rank_00001.jsonl", "batches.json"};
    static constexpr std::string_view cut = "\n--8<--\n";
    for (const char* name : names) {
        const auto at = rest.find(cut);
        wlb::fuzz::write_scratch(std::string("trace/") + name, rest.substr(0, at));
        if (at == std::string_view::npos)
            break;
        rest.remove_prefix(at + cut.size());
    }
    return dir.string();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto in = wlb::fuzz::select(data, size);
    wlb::profiler::analysis_options options;
    options.ingest.threads = 1;
    std::string path;
    switch (in.selector % 5) {
    case 0:
        options.ingest.format = wlb::profiler::trace_format::kineto;
        path = wlb::fuzz::write_scratch("input.pt.trace.json", in.rest);
        break;
    case 1:
        options.ingest.format = wlb::profiler::trace_format::megatron;
        path = wlb::fuzz::write_scratch("input.json", in.rest);
        break;
    case 2:
        options.ingest.format = wlb::profiler::trace_format::perfetto;
        path = wlb::fuzz::write_scratch("input.json", in.rest);
        break;
    case 3:
        options.ingest.format = wlb::profiler::trace_format::wlbtune;
        path = write_trace_dir(in.rest);
        break;
    case 4:
        path = wlb::fuzz::write_scratch("input.json", in.rest);
        break;
    }
    wlb::fuzz::expect_input_errors([&] { (void)wlb::profiler::analyze({path}, options); });
    wlb::profiler::release_parse_buffers();
    return 0;
}
