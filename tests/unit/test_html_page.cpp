// The HTML report's page and its data (reports/html/): the analyze page's rank x step matrices
// hold the breakdown's own sums and, grouped, the largest value of each group; the per-rank
// lists are gone from the embedded report and the rest is the report, rounded; text from the
// report cannot end the page's script elements; the page holds everything it needs (no external
// script or style); a failed write leaves no file.
#include "base/error.hpp"
#include "reports/html/html_assets.hpp"
#include "reports/html/html_report.hpp"
#include "reports/html/page_data.hpp"

#include <filesystem>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <string>

namespace {

using nlohmann::json;
using wlb::reports::html_kind;
using wlb::reports::html_options;

// An analysis report of `ranks` ranks and `steps` steps: rank r in step s computes
// attention r + s, linear 0.5, other 0.25 seconds, exposes 0.125 s of TP and 0.0625 s of PP
// communication and idles 0.01 * r. Rank 2 is absent from step 1.
json analysis(int ranks, int steps) {
    json j = {{"schema", "wlbtune.analysis/1"},
              {"job",
               {{"layout", "tp=1,cp=1,pp=" + std::to_string(ranks) + ",dp=1"},
                {"order", "tp-cp-pp-dp"},
                {"world_size", ranks},
                {"note", "</script><script>alert(1)</script>"}}},
              {"steps", json::array()}};
    for (int s = 0; s < steps; ++s) {
        json breakdown = json::array();
        for (int r = 0; r < ranks; ++r) {
            if (r == 2 && s == 1)
                continue;
            breakdown.push_back(
                {{"rank", r},
                 {"attention_seconds", r + s},
                 {"linear_seconds", 0.5},
                 {"other_seconds", 0.25},
                 {"unsplit_compute_seconds", 0.0},
                 {"compute_busy_seconds", 1.0},
                 {"communication",
                  {{"tp", {{"total_seconds", 0.5}, {"exposed_seconds", 0.125}}},
                   {"pp", {{"total_seconds", 0.0625}, {"exposed_seconds", 0.0625}}}}},
                 {"idle_seconds", 0.01 * r}});
        }
        j["steps"].push_back({{"step", 10 + s},
                              {"attributed", true},
                              {"lost_seconds", 1.0 / 3.0},
                              {"breakdown", breakdown},
                              {"stragglers", {{"relative_speed", json::array()}}}});
    }
    return j;
}

// The page without the text of its <script> elements.
std::string markup_outside_scripts(const std::string& page) {
    std::string out;
    std::size_t at = 0;
    while (true) {
        const auto open = page.find("<script", at);
        if (open == std::string::npos)
            break;
        const auto body = page.find('>', open) + 1;
        out += page.substr(at, body - at);
        at = page.find("</script>", body);
        if (at == std::string::npos)
            return out + "(unclosed script)";
    }
    return out + page.substr(at);
}

TEST(HtmlPageData, AnalyzeMatricesHoldEachRanksSums) {
    const auto d = wlb::reports::html_page_data(html_kind::analyze, analysis(4, 3), {});
    EXPECT_EQ(d["kind"], "analyze");
    const auto& m = d["view"]["ranks"];
    EXPECT_EQ(m["units_per_row"], 1);
    EXPECT_EQ(m["rows_are"], "ranks");
    EXPECT_EQ(m["steps_per_column"], 1);
    ASSERT_EQ(m["rows"].size(), 4u);
    ASSERT_EQ(m["columns"].size(), 3u);
    EXPECT_EQ(m["columns"][2]["first_step"], 12);
    EXPECT_EQ(m["rows"][3]["place"], "tp 0, cp 0, pp 3, dp 0");
    for (int r = 0; r < 4; ++r)
        for (int s = 0; s < 3; ++s) {
            const auto& c =
                m["compute_seconds"][static_cast<std::size_t>(r)][static_cast<std::size_t>(s)];
            if (r == 2 && s == 1) {
                EXPECT_TRUE(c.is_null()) << "rank 2 is not in step 1";
                continue;
            }
            EXPECT_DOUBLE_EQ(c.get<double>(), r + s + 0.75);
            EXPECT_DOUBLE_EQ(
                m["exposed_comm_seconds"][static_cast<std::size_t>(r)][static_cast<std::size_t>(s)]
                    .get<double>(),
                0.1875);
        }
    // The per-rank lists left the embedded report; the rest stayed, rounded to 6 digits.
    for (const auto& s : d["report"]["steps"]) {
        EXPECT_FALSE(s.contains("breakdown"));
        EXPECT_FALSE(s.contains("stragglers"));
        EXPECT_DOUBLE_EQ(s["lost_seconds"].get<double>(), 0.333333);
    }
}

TEST(HtmlPageData, LargeJobsAreGroupedByTheirLargestValue) {
    html_options o;
    o.max_heatmap_rows = 2;    // 5 ranks: groups of 3 (0-2, 3-4)
    o.max_heatmap_columns = 2; // 3 steps: groups of 2 (10-11, 12)
    const auto d = wlb::reports::html_page_data(html_kind::analyze, analysis(5, 3), o);
    const auto& m = d["view"]["ranks"];
    EXPECT_EQ(m["units_per_row"], 3);
    EXPECT_EQ(m["steps_per_column"], 2);
    ASSERT_EQ(m["rows"].size(), 2u);
    EXPECT_EQ(m["rows"][0]["label"], "0-2");
    EXPECT_EQ(m["rows"][1]["label"], "3-4");
    EXPECT_FALSE(m["rows"][0].contains("place")) << "a group has no single place";
    EXPECT_EQ(m["columns"][0]["last_step"], 11);
    // Largest attention in each group: rank 2 step 0 (2; rank 2 lacks step 1), rank 1 step 1
    // (2); rank 2 step 2 (4); rank 4 step 1 (5); rank 4 step 2 (6).
    const auto& c = m["compute_seconds"];
    EXPECT_DOUBLE_EQ(c[0][0].get<double>(), 2.75);
    EXPECT_DOUBLE_EQ(c[0][1].get<double>(), 4.75);
    EXPECT_DOUBLE_EQ(c[1][0].get<double>(), 5.75);
    EXPECT_DOUBLE_EQ(c[1][1].get<double>(), 6.75);
    EXPECT_DOUBLE_EQ(m["idle_seconds"][1][1].get<double>(), 0.04);
}

TEST(HtmlPageData, ReplicatedTpPeersShareARow) {
    // tp=2 x pp=3, order tp-cp-pp-dp: TP groups {0,1}, {2,3}, {4,5}; in a trace whose TP peers
    // are copies of their TP rank 0, one row per group holds the group's largest value.
    auto report = analysis(6, 2);
    report["job"]["layout"] = "tp=2,cp=1,pp=3,dp=1";
    report["job"]["tp_replicated"] = true;
    const auto d = wlb::reports::html_page_data(html_kind::analyze, report, {});
    const auto& m = d["view"]["ranks"];
    EXPECT_EQ(m["rows_are"], "tp_groups");
    ASSERT_EQ(m["rows"].size(), 3u);
    EXPECT_EQ(m["rows"][1]["label"], "2-3");
    EXPECT_EQ(m["rows"][1]["place"], "TP group: cp 0, pp 1, dp 0");
    EXPECT_DOUBLE_EQ(m["compute_seconds"][1][0].get<double>(), 3.75);
    EXPECT_DOUBLE_EQ(m["compute_seconds"][1][1].get<double>(), 4.75) << "rank 2 lacks step 1";
    EXPECT_DOUBLE_EQ(m["compute_seconds"][2][1].get<double>(), 6.75);

    report["job"]["tp_replicated"] = false; // measured peers: a row each
    EXPECT_EQ(wlb::reports::html_page_data(html_kind::analyze, report, {})["view"]["ranks"]["rows"]
                  .size(),
              6u);
}

TEST(HtmlPageData, PackStepsBecomeColumnsAndKindsAreChecked) {
    json pack = {{"schema", "wlbtune.pack/1"},
                 {"results",
                  {{{"name", "plain"},
                    {"steps",
                     {{{"step", 0},
                       {"predicted_imbalance", 1.5},
                       {"micro_batch_tokens", {{"min", 1}, {"max", 9}}}},
                      {{"step", 1},
                       {"predicted_imbalance", 1.25},
                       {"micro_batch_tokens", {{"min", 2}, {"max", 8}}}}}}}}}};
    const auto d = wlb::reports::html_page_data(html_kind::pack, pack, {});
    const auto& cols = d["report"]["results"][0]["steps"];
    EXPECT_EQ(cols["step"], json({0, 1}));
    EXPECT_EQ(cols["predicted_imbalance"], json({1.5, 1.25}));
    EXPECT_EQ(cols["micro_batch_tokens.max"], json({9, 8}));

    pack["results"][0].erase("steps");
    EXPECT_THROW(wlb::reports::html_page_data(html_kind::pack, pack, {}), wlb::input_error);
    EXPECT_THROW(wlb::reports::html_page_data(html_kind::tune, pack, {}), wlb::input_error);
    EXPECT_THROW(wlb::reports::html_page_data(html_kind::simulate,
                                              json{{"schema", "wlbtune.simulate/1"}}, {}),
                 wlb::input_error)
        << "a simulate page needs --compare";
}

TEST(HtmlPage, IsSelfContainedAndReportTextCannotEndItsScripts) {
    html_options o;
    o.perfetto_path = "/tmp/some/dir/trace.json.gz";
    const auto page =
        wlb::reports::html_page(html_kind::analyze, analysis(3, 2), o, "/tmp/some/page.html");
    EXPECT_EQ(page.rfind("<!doctype html>", 0), 0u);
    // The report's "</script>" is written as \u003c/script>: the only closing tags are the
    // page's own (data, library, page code, the kind's code, and the head's guard).
    std::size_t closes = 0;
    for (auto at = page.find("</script"); at != std::string::npos;
         at = page.find("</script", at + 1))
        ++closes;
    EXPECT_EQ(closes, 5u);
    EXPECT_NE(page.find("\\u003c/script>\\u003cscript>alert(1)"), std::string::npos);
    // Everything inline: the markup outside the scripts names no script, style sheet or image
    // to load (the scripts' text may well hold such words: the library builds elements).
    const auto markup = markup_outside_scripts(page);
    EXPECT_EQ(markup.find("src="), std::string::npos) << markup;
    EXPECT_EQ(markup.find("<link"), std::string::npos) << markup;
    EXPECT_EQ(markup.find("<img"), std::string::npos) << markup;
    EXPECT_EQ(markup.find("href="), std::string::npos) << markup;
    EXPECT_NE(page.find(wlb::reports::html_asset("echarts.min.js")), std::string::npos)
        << "the charting library is inlined whole";
    EXPECT_NE(page.find("\"perfetto\":\"dir/trace.json.gz\""), std::string::npos)
        << "linked relative to the page";
    for (const char* marker :
         {"{{title}}", "{{css}}", "{{data}}", "{{echarts}}", "{{page_js}}", "{{kind_js}}"})
        EXPECT_EQ(page.find(marker), std::string::npos) << marker << " left unfilled";
    EXPECT_NE(page.find("<title>wlbtune analyze: tp=1,cp=1,pp=3,dp=1</title>"), std::string::npos);
}

TEST(HtmlPage, AFailedWriteLeavesNoPage) {
    const auto dir = std::filesystem::temp_directory_path() / "wlb-html-missing-dir";
    std::filesystem::remove_all(dir);
    const auto path = (dir / "page.html").string();
    EXPECT_THROW(wlb::reports::write_html_report(html_kind::analyze, analysis(2, 1), path),
                 wlb::runtime_failure);
    EXPECT_FALSE(std::filesystem::exists(dir));
    EXPECT_THROW(wlb::reports::write_html_report(html_kind::analyze, analysis(2, 1), "-"),
                 wlb::usage_error);
    // A report of the wrong kind fails before anything is written.
    const auto ok = std::filesystem::temp_directory_path() / "wlb-html-wrong-kind.html";
    std::filesystem::remove(ok);
    EXPECT_THROW(wlb::reports::write_html_report(html_kind::tune, analysis(2, 1), ok.string()),
                 wlb::input_error);
    EXPECT_FALSE(std::filesystem::exists(ok));
}

} // namespace
