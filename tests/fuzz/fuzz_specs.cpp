// Fuzz target: the values users type (base/token_count, runtime/parallel/layout, the trace and
// clock options, --rank-map, --context policy). The first byte picks the parser:
//   0 token count ("128k")        3 trace format ("kineto")   6 context policy ("split")
//   1 layout ("tp=2,cp=4,dp=2")   4 clock option ("3=-1.5ms")
//   2 order ("tp-cp-pp-dp")       5 rank map (--rank-map)
// A layout that parses is taken through its coordinates both ways, which its own invariants
// must survive.
#include "base/token_count.hpp"
#include "fuzz_support.hpp"
#include "profiler/ingest/clock_align.hpp"
#include "profiler/ingest/ingest.hpp"
#include "profiler/ingest/rank_names.hpp"
#include "runtime/parallel/layout.hpp"
#include "tuner/data/document_stream.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto in = wlb::fuzz::select(data, size);
    wlb::fuzz::expect_input_errors([&] {
        switch (in.selector % 7) {
        case 0:
            (void)wlb::parse_token_count(in.rest, "--context");
            break;
        case 1: {
            // "SPEC|ORDER": the order is optional.
            const auto bar = in.rest.find('|');
            const auto l =
                bar == std::string_view::npos
                    ? wlb::runtime::layout::parse(in.rest)
                    : wlb::runtime::layout::parse(in.rest.substr(0, bar), in.rest.substr(bar + 1));
            const int world = l.world_size();
            // Every rank maps to coordinates and back (a few ranks of a large world).
            for (int r = 0; r < world; r += 1 + world / 64) {
                if (l.rank_of(l.coords_of(r)) != r)
                    std::abort();
            }
            (void)l.spec();
            break;
        }
        case 2:
            (void)wlb::runtime::parse_order(in.rest);
            break;
        case 3:
            (void)wlb::profiler::parse_trace_format(in.rest);
            break;
        case 4:
            (void)wlb::profiler::parse_clock_option(in.rest);
            break;
        case 5:
            (void)wlb::profiler::rank_map::parse(in.rest);
            break;
        case 6:
            (void)wlb::tuner::parse_context_policy(in.rest);
            break;
        }
    });
    return 0;
}
