// The spec factory and the embedded default workload.
#include "base/error.hpp"
#include "support/cli_runner.hpp"
#include "support/idx_writer.hpp"
#include "tuner/data/embedded_workload.hpp"
#include "tuner/data/length_summary.hpp"
#include "tuner/data/open_document_source.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace tuner = wlb::tuner;
using wlb::test::temp_dir;
using wlb::test::write_bytes;

namespace {

std::vector<std::int64_t> read_all(tuner::document_source& s) {
    std::vector<std::int64_t> out;
    while (auto l = s.next())
        out.push_back(*l);
    return out;
}

TEST(OpenDocumentSource, SpecsParseIntoKindPathAndField) {
    struct c {
        const char* spec;
        const char* kind;
        const char* path;
        const char* field;
    };
    const c cases[] = {
        {"default", "embedded", "", ""},
        {"embedded", "embedded", "", ""},
        {"idx:/d/x.idx", "idx", "/d/x.idx", ""},
        {"idx:/d/x", "idx", "/d/x", ""},
        {"json:a.txt", "json", "a.txt", ""},
        {"jsonl:a.jsonl#tokens", "jsonl", "a.jsonl", "tokens"},
        {"jsonl:a#b.jsonl", "jsonl", "a", "b.jsonl"},
        {"csv:a.csv#2", "csv", "a.csv", "2"},
        {"text:a", "text", "a", ""},
        {"data/x.idx", "idx", "data/x.idx", ""},
        {"data/x.json", "json", "data/x.json", ""},
        {"data/x.jsonl", "jsonl", "data/x.jsonl", ""},
        {"data/x.jsonl#n", "jsonl", "data/x.jsonl", "n"},
        {"data/x.csv#len", "csv", "data/x.csv", "len"},
        {"data/x.txt", "text", "data/x.txt", ""},
    };
    for (const auto& x : cases) {
        SCOPED_TRACE(x.spec);
        const auto s = tuner::parse_source_spec(x.spec);
        EXPECT_EQ(s.kind, x.kind);
        EXPECT_EQ(s.path, x.path);
        EXPECT_EQ(s.field, x.field);
    }
    EXPECT_EQ(tuner::parse_source_spec("synthetic:lognormal?n=3").query, "lognormal?n=3");
}

TEST(OpenDocumentSource, UnknownSpecsListTheAcceptedForms) {
    for (const char* spec : {"data.parquet", "xyz", "idx:", "hdf5:x"}) {
        SCOPED_TRACE(spec);
        try {
            tuner::open_document_source(spec);
            ADD_FAILURE() << "accepted";
        } catch (const wlb::input_error& e) {
            const std::string m = e.what();
            EXPECT_NE(m.find(spec), std::string::npos) << m;
            if (std::string_view(spec) != "idx:") {
                EXPECT_NE(m.find("synthetic:wlbllm"), std::string::npos) << m;
            }
        }
    }
}

TEST(OpenDocumentSource, EveryFileKindOpensThroughTheFactory) {
    temp_dir dir;
    const std::vector<std::int64_t> want = {5, 600, 70000};
    write_bytes((dir / "a.json").string(), "[5, 600, 70000]");
    write_bytes((dir / "a.txt").string(), "5\n600\n70000\n");
    write_bytes((dir / "a.jsonl").string(), "{\"n\":5}\n{\"n\":600}\n{\"n\":70000}\n");
    write_bytes((dir / "a.csv").string(), "x,n\n1,5\n2,600\n3,70000\n");
    write_bytes((dir / "a.idx").string(), wlb::test::idx_bytes({{5}, {100, 500}, {70000}}));
    const std::string d = dir.path().string();
    for (const std::string& spec :
         {d + "/a.json", d + "/a.txt", d + "/a.jsonl#n", d + "/a.csv#n", d + "/a.idx",
          "json:" + d + "/a.json", "text:" + d + "/a.txt", "jsonl:" + d + "/a.jsonl#n",
          "csv:" + d + "/a.csv#1", "idx:" + d + "/a.idx"}) {
        SCOPED_TRACE(spec);
        auto src = tuner::open_document_source(spec);
        EXPECT_EQ(read_all(*src), want);
        const auto inputs = tuner::source_inputs(tuner::parse_source_spec(spec));
        ASSERT_EQ(inputs.size(), 1u);
        EXPECT_EQ(inputs[0].bytes, std::filesystem::file_size(inputs[0].path));
    }
    tuner::source_options o;
    o.jsonl_key = "n";
    EXPECT_EQ(read_all(*tuner::open_document_source(d + "/a.jsonl", o)), want);
    EXPECT_TRUE(tuner::source_inputs(tuner::parse_source_spec("default")).empty());
}

TEST(EmbeddedWorkload, HasTheDocumentedSizeAndValidLengths) {
    const auto lengths = tuner::embedded_workload_lengths();
    EXPECT_EQ(lengths.size(), 32768u);
    for (auto l : lengths) {
        ASSERT_GE(l, 1);
        ASSERT_LE(l, 131072);
    }
    auto src = tuner::open_document_source("default");
    EXPECT_EQ(src->size_hint(), 32768);
    EXPECT_NE(src->describe().find("distca"), std::string::npos);
}

TEST(EmbeddedWorkload, IsASampleOfTheSharedReferenceWithItsStatistics) {
    const std::filesystem::path ref =
        std::filesystem::path(WLB_SHARED_DATA_DIR) / "wlbllm_doc_lengths.json";
    if (!std::filesystem::exists(ref))
        GTEST_SKIP() << "the shared reference " << ref
                     << " is absent (it lives outside the project; only this comparison needs it)";
    std::ifstream in(ref);
    const auto all = nlohmann::json::parse(in).get<std::vector<std::int64_t>>();
    const auto emb = tuner::embedded_workload_lengths();
    // A sample without replacement: every embedded length occurs in the reference at least as
    // often as in the sample (multiset inclusion).
    std::vector<std::int64_t> a(all.begin(), all.end()), b(emb.begin(), emb.end());
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    EXPECT_TRUE(std::includes(a.begin(), a.end(), b.begin(), b.end()));
    // Statistics: a random third of the reference. The mean's standard error is
    // sd/sqrt(n) * sqrt(1 - n/N) = 7,900/181 * 0.82 = 36 tokens (tolerance 4% = 158 tokens);
    // the median's about 15 (tolerance 2%); p99's about 1,500 (tolerance 20%); the share of
    // tokens over 32K rests on ~290 documents (tolerance 4 points, about 3 standard errors).
    const auto ra = tuner::summarize_lengths(a, 131072);
    const auto rb = tuner::summarize_lengths(b, 131072);
    EXPECT_NEAR(rb.mean_tokens, ra.mean_tokens, 0.04 * ra.mean_tokens);
    EXPECT_NEAR(double(rb.p50_tokens), double(ra.p50_tokens), 0.02 * double(ra.p50_tokens));
    EXPECT_NEAR(double(rb.p99_tokens), double(ra.p99_tokens), 0.20 * double(ra.p99_tokens));
    const auto share = [](const tuner::length_summary& s) {
        return double(s.over_32k_tokens) / double(s.tokens);
    };
    EXPECT_NEAR(share(rb), share(ra), 0.04);
    EXPECT_LE(rb.max_tokens, ra.max_tokens);
}

} // namespace
