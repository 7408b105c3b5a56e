// Fuzz target: the document-length sources of --data (tuner/data). The first byte picks the
// parser, the rest is the file's content (or, for synthetic, the spec's text):
//   0 idx   Megatron .idx index      3 csv   CSV, column "length"   6 a whole --data spec
//   1 json  JSON array of lengths    4 text  one length per line      (parse_source_spec only)
//   2 jsonl JSON Lines, key "length" 5 synthetic:TEXT
// Every source is drained through a document_stream (context 4096, split), rewound and read
// again, as the packers use it; at most max_draws documents a pass, since a synthetic spec may
// ask for billions.
#include "fuzz_support.hpp"
#include "tuner/data/document_stream.hpp"
#include "tuner/data/open_document_source.hpp"

#include <cstddef>
#include <cstdint>
#include <string>

namespace {

constexpr int max_draws = 20000;

void drain(wlb::tuner::document_stream& stream) {
    for (int pass = 0; pass < 2; ++pass) {
        for (int i = 0; i < max_draws && stream.next(0); ++i) {
        }
        stream.rewind();
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto in = wlb::fuzz::select(data, size);
    std::string spec;
    switch (in.selector % 7) {
    case 0:
        spec = "idx:" + wlb::fuzz::write_scratch("input.idx", in.rest);
        break;
    case 1:
        spec = "json:" + wlb::fuzz::write_scratch("input.json", in.rest);
        break;
    case 2:
        spec = "jsonl:" + wlb::fuzz::write_scratch("input.jsonl", in.rest);
        break;
    case 3:
        spec = "csv:" + wlb::fuzz::write_scratch("input.csv", in.rest);
        break;
    case 4:
        spec = "text:" + wlb::fuzz::write_scratch("input.txt", in.rest);
        break;
    case 5:
        spec = "synthetic:" + std::string(in.rest);
        break;
    case 6:
        wlb::fuzz::expect_input_errors([&] { (void)wlb::tuner::parse_source_spec(in.rest); });
        return 0;
    }
    wlb::fuzz::expect_input_errors([&] {
        wlb::tuner::stream_options options;
        options.context_tokens = 4096;
        options.policy = wlb::tuner::context_policy::split;
        auto stream = wlb::tuner::open_document_stream(spec, options);
        drain(stream);
    });
    return 0;
}
