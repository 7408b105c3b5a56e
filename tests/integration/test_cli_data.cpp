// End-to-end: `wlbtune data` on the embedded workload, generated files and bad input.
#include "support/cli_runner.hpp"
#include "support/idx_writer.hpp"

#include <filesystem>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using wlb::test::run_wlbtune;
using wlb::test::temp_dir;

namespace {

TEST(CliData, DefaultIsTheEmbeddedWorkload) {
    auto r = run_wlbtune("data");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("embedded"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("32,768"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("length histogram"), std::string::npos) << r.out;
}

TEST(CliData, JsonCarriesTheHeaderTheInputAndConsistentCounts) {
    temp_dir dir;
    const auto idx = (dir / "d.idx").string();
    // 4 documents: 10, 300 (two sequences), 200000 (over 128K), 40000
    wlb::test::write_bytes(idx, wlb::test::idx_bytes({{10}, {100, 200}, {200000}, {40000}}));
    const auto out = (dir / "data.json").string();
    auto r = run_wlbtune("data --data idx:" + idx + " --policy split --json " + out);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto j = nlohmann::json::parse(wlb::test::read_text(out));
    EXPECT_EQ(j.at("schema"), "wlbtune.data/1");
    ASSERT_EQ(j.at("inputs").size(), 1u);
    EXPECT_EQ(j.at("inputs")[0].at("path"), idx);
    EXPECT_EQ(j.at("inputs")[0].at("bytes"), std::filesystem::file_size(idx));
    const auto& l = j.at("lengths");
    EXPECT_EQ(l.at("documents"), 4);
    EXPECT_EQ(l.at("tokens"), 10 + 300 + 200000 + 40000);
    EXPECT_EQ(l.at("max_tokens"), 200000);
    EXPECT_EQ(l.at("over_32k").at("documents"), 2);
    EXPECT_EQ(l.at("over_context").at("documents"), 1);
    const auto& s = j.at("stream");
    EXPECT_EQ(s.at("split_documents"), 1);
    EXPECT_EQ(s.at("split_pieces"), 2); // 200000 = 131072 + 68928
    EXPECT_EQ(s.at("documents"), 5);
    EXPECT_EQ(s.at("tokens"), l.at("tokens"));
}

TEST(CliData, TruncateAndShuffleOnASyntheticSource) {
    auto r = run_wlbtune("data --data 'synthetic:wlbllm?n=5000&seed=2' --context 32k "
                         "--policy truncate --shuffle 7 --json -");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out); // JSON alone on stdout
    const auto& s = j.at("stream");
    EXPECT_EQ(s.at("source_tokens").get<long long>(),
              s.at("tokens").get<long long>() + s.at("dropped_tokens").get<long long>());
    EXPECT_EQ(s.at("truncated_documents"), j.at("lengths").at("over_context").at("documents"));
    EXPECT_TRUE(j.at("inputs").empty());
}

TEST(CliData, BadInputNamesTheFileAndPlace) {
    temp_dir dir;
    const auto txt = (dir / "l.txt").string();
    wlb::test::write_bytes(txt, "10\n20\nthirty\n");
    const auto idx = (dir / "bad.idx").string();
    wlb::test::write_bytes(idx, "MMIDIDX");
    const auto err_json = (dir / "err.json").string();
    struct c {
        std::string args;
        int code;
        std::string part;
    };
    const c cases[] = {
        {"data --data " + txt, 3, txt + ":3: expected a document length"},
        {"data --data " + idx + " --json " + err_json, 3, idx + ":offset 7: truncated header"},
        {"data --data nothing.parquet", 3, "unknown data source \"nothing.parquet\""},
        {"data --data default --context 0", 3, "--context"},
        {"data --policy drop", 3, "drop"}, // a value refused by its option check: bad input
        {"data --data /nonexistent/x.json", 3, "/nonexistent/x.json: cannot open"},
    };
    for (const auto& x : cases) {
        SCOPED_TRACE(x.args);
        auto r = run_wlbtune(x.args);
        EXPECT_EQ(r.exit_code, x.code) << r.err;
        EXPECT_NE(r.err.find(x.part), std::string::npos) << r.err;
    }
    const auto j = nlohmann::json::parse(wlb::test::read_text(err_json));
    EXPECT_EQ(j.at("schema"), "wlbtune.error/1");
    EXPECT_EQ(j.at("error").at("kind"), "bad_input");
}

} // namespace
