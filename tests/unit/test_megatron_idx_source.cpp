// The Megatron .idx reader: files written by tests/support/idx_writer.hpp read back equal, and
// every malformed file gets an input_error naming the byte offset.
#include "base/error.hpp"
#include "support/cli_runner.hpp"
#include "support/idx_writer.hpp"
#include "tuner/data/megatron_idx_source.hpp"

#include <gtest/gtest.h>
#include <numeric>
#include <random>

using wlb::input_error;
using wlb::test::idx_bytes;
using wlb::test::idx_documents;
using wlb::test::temp_dir;
using wlb::test::write_bytes;
using wlb::tuner::megatron_idx_source;

namespace {

std::vector<std::int64_t> read_all(wlb::tuner::document_source& s) {
    std::vector<std::int64_t> out;
    while (auto l = s.next())
        out.push_back(*l);
    return out;
}

std::vector<std::int64_t> expected_lengths(const idx_documents& docs) {
    std::vector<std::int64_t> out;
    for (const auto& d : docs)
        out.push_back(std::accumulate(d.begin(), d.end(), std::int64_t{0}));
    return out;
}

idx_documents random_documents(std::uint64_t seed, int count) {
    std::mt19937_64 rng(seed);
    idx_documents docs;
    for (int i = 0; i < count; ++i) {
        std::vector<std::int32_t> seqs(rng() % 4); // 0..3 sequences; 0 = empty document
        for (auto& s : seqs)
            s = static_cast<std::int32_t>(rng() % 70000);
        docs.push_back(seqs);
    }
    return docs;
}

// The message of the input_error `f` throws, or a failure.
template <typename F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const input_error& e) {
        return e.what();
    }
    ADD_FAILURE() << "no input_error";
    return {};
}

TEST(MegatronIdx, EveryDtypeWithAndWithoutModesReadsBackEqual) {
    temp_dir dir;
    const auto docs = random_documents(7, 500);
    for (std::uint8_t dtype = 1; dtype <= 8; ++dtype) {
        for (bool modes : {false, true}) {
            SCOPED_TRACE(testing::Message() << "dtype " << int(dtype) << " modes " << modes);
            const auto path = (dir / "x.idx").string();
            write_bytes(path, idx_bytes(docs, dtype, modes));
            megatron_idx_source src(path);
            EXPECT_EQ(src.header().dtype_code, dtype);
            EXPECT_EQ(src.header().has_modes, modes);
            EXPECT_EQ(src.size_hint(), static_cast<std::int64_t>(docs.size()));
            EXPECT_EQ(read_all(src), expected_lengths(docs));
            src.rewind();
            EXPECT_EQ(read_all(src), expected_lengths(docs)) << "rewind replays the documents";
        }
    }
}

TEST(MegatronIdx, EmptyDatasetAndEmptyDocumentsAreValid) {
    temp_dir dir;
    const auto path = (dir / "e.idx").string();
    write_bytes(path, idx_bytes({}));
    megatron_idx_source empty(path);
    EXPECT_EQ(empty.size_hint(), 0);
    EXPECT_FALSE(empty.next());
    write_bytes(path, idx_bytes({{}, {5, 6}, {}}));
    megatron_idx_source some(path);
    EXPECT_EQ(read_all(some), (std::vector<std::int64_t>{0, 11, 0}));
}

TEST(MegatronIdx, DtypeNamesFollowMegatron) {
    EXPECT_EQ(wlb::tuner::idx_dtype_name(4), "int32");
    EXPECT_EQ(wlb::tuner::idx_dtype_name(8), "uint16");
    EXPECT_EQ(wlb::tuner::idx_dtype_name(9), "invalid");
}

struct offset_case {
    std::string name;
    std::string bytes;
    std::string offset; // "offset N"
    std::string what;
};

TEST(MegatronIdx, MalformedFilesNameTheOffset) {
    const idx_documents docs = {{3, 4}, {5}, {6, 7, 8}}; // N = 6 sequences, D = 4
    const std::string good = idx_bytes(docs);
    const std::size_t bounds = 34 + 12 * 6; // the boundary array
    auto patched = [&](std::size_t offset, auto value) {
        std::string b = good;
        std::memcpy(b.data() + offset, &value, sizeof value);
        return b;
    };
    std::vector<offset_case> cases = {
        {"empty file", "", "offset 0", "truncated header"},
        {"magic cut", good.substr(0, 5), "offset 5", "truncated header"},
        {"version cut", good.substr(0, 12), "offset 12", "version field"},
        {"dtype missing", good.substr(0, 17), "offset 17", "dtype code field"},
        {"sequence count cut", good.substr(0, 20), "offset 20", "sequence count field"},
        {"document count cut", good.substr(0, 33), "offset 33", "document count field"},
        {"header only", good.substr(0, 34), "offset 18", "sizes inconsistent"},
        {"body cut", good.substr(0, good.size() - 3), "offset 18", "sizes inconsistent"},
        {"extra bytes", good + std::string(2, '\0'), "offset 18", "sizes inconsistent"},
        {"wrong magic", "MMIDIDY" + good.substr(7), "offset 6", "wrong magic"},
        {"wrong version", patched(9, std::uint64_t{2}), "offset 9",
         "wrong version: expected 1, found 2"},
        {"dtype 0", patched(17, std::uint8_t{0}), "offset 17", "bad dtype code 0"},
        {"dtype 9", patched(17, std::uint8_t{9}), "offset 17", "bad dtype code 9"},
        {"sequence count too big", patched(18, std::uint64_t{7}), "offset 18",
         "sizes inconsistent"},
        {"huge counts", patched(18, ~std::uint64_t{0}), "offset 18", "sizes inconsistent"},
        {"document count 0", patched(26, std::uint64_t{0}), "offset 26",
         "document count field is 0"},
        {"first boundary", patched(bounds, std::int64_t{1}), fmt::format("offset {}", bounds),
         "the first must be 0"},
        {"last boundary", patched(bounds + 24, std::int64_t{5}),
         fmt::format("offset {}", bounds + 24), "the last must equal the sequence count 6"},
    };
    temp_dir dir;
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        const auto path = (dir / "bad.idx").string();
        write_bytes(path, c.bytes);
        const auto message = error_of([&] { megatron_idx_source src(path); });
        EXPECT_NE(message.find(path + ":" + c.offset + ":"), std::string::npos) << message;
        EXPECT_NE(message.find(c.what), std::string::npos) << message;
    }
}

TEST(MegatronIdx, DataErrorsNameTheOffsetWhenTheDocumentIsRead) {
    const idx_documents docs = {{3, 4}, {5}, {6, 7, 8}};
    const std::string good = idx_bytes(docs);
    const std::size_t bounds = 34 + 12 * 6;
    auto patched = [&](std::size_t offset, auto value) {
        std::string b = good;
        std::memcpy(b.data() + offset, &value, sizeof value);
        return b;
    };
    const std::vector<offset_case> cases = {
        {"decreasing", patched(bounds + 16, std::int64_t{1}), fmt::format("offset {}", bounds + 16),
         "must not decrease"},
        {"beyond N", patched(bounds + 8, std::int64_t{9}), fmt::format("offset {}", bounds + 8),
         "beyond the sequence count 6"},
        {"negative length", patched(34 + 4 * 3, std::int32_t{-5}),
         fmt::format("offset {}", 34 + 12), "negative length -5 of sequence 3"},
    };
    temp_dir dir;
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        const auto path = (dir / "bad.idx").string();
        write_bytes(path, c.bytes);
        megatron_idx_source src(path); // the header is fine
        const auto message = error_of([&] { read_all(src); });
        EXPECT_NE(message.find(path + ":" + c.offset + ":"), std::string::npos) << message;
        EXPECT_NE(message.find(c.what), std::string::npos) << message;
    }
}

TEST(MegatronIdx, MissingFileNamesThePath) {
    const auto message = error_of([] { megatron_idx_source src("/nonexistent/x.idx"); });
    EXPECT_NE(message.find("/nonexistent/x.idx: cannot open"), std::string::npos) << message;
}

} // namespace
