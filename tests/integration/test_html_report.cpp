// End-to-end in a real browser: each kind of HTML page (analyze, tune, simulate --compare, pack
// --compare) is written by wlbtune and opened in headless Chromium (Debian's package, installed
// by scripts/install-deps.sh). A page passes when the browser saw no error, no console message
// and no load (a self-contained page loads nothing), every chart drew marks, the charts the page
// must have are there, and drawing finished; a screenshot of each is saved under the build dir
// (html-screenshots/). The checker is shown to fail: on a page whose charts draw nothing, on a
// script error and on a failed load.
//
// What the browser saw: tests/support/chromium.hpp. Skips where Chromium is missing.
#include "support/chromium.hpp"
#include "support/cli_runner.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

using wlb::test::find_chromium;
using wlb::test::problems_of;
using wlb::test::read_text;
using wlb::test::run_wlbtune;
using wlb::test::temp_dir;

namespace {

namespace fs = std::filesystem;

const fs::path screenshot_dir = fs::path(WLB_BINARY_DIR) / "html-screenshots";

/// Opens `page` in Chromium with a screenshot `name`.png under the build dir.
wlb::test::page_load open_page(const std::string& chromium, const fs::path& page,
                               const std::string& name, int width = 1280, int height = 2400) {
    return wlb::test::open_page(chromium, page, screenshot_dir / (name + ".png"), width, height);
}

std::string joined(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v)
        s += "\n  " + x;
    return s;
}

class HtmlReport : public ::testing::Test {
protected:
    void SetUp() override {
        const auto c = find_chromium();
        if (!c)
            GTEST_SKIP() << "chromium is not installed (scripts/install-deps.sh installs Debian's "
                            "chromium); the HTML pages are not opened in a browser";
        m_chromium = *c;
    }

    /// A simulated trace with a heavy micro-batch, per-sequence CP sharding (uneven CP ranks)
    /// and a slow rank, analyzed with --html and --perfetto.
    fs::path analyze_page() {
        const auto trace = (m_dir / "trace").string();
        auto sim = run_wlbtune("simulate --data 'synthetic:wlbllm?n=4000&seed=5' --context 32k "
                               "--layout tp=2,cp=2,pp=2,dp=1 --steps 4 --sharding per-seq "
                               "--inject heavy-mb=1:1.4 --inject slow-rank=5:1.3 --trace-dir '" +
                               trace + "'");
        EXPECT_EQ(sim.exit_code, 0) << sim.err;
        const auto page = m_dir / "analyze.html";
        auto r = run_wlbtune("analyze '" + trace + "' --html '" + page.string() + "' --perfetto '" +
                             (m_dir / "analysis.json.gz").string() + "'");
        EXPECT_EQ(r.exit_code, 0) << r.err;
        EXPECT_NE(r.out.find("HTML report: "), std::string::npos) << r.out;
        return page;
    }

    std::string m_chromium;
    temp_dir m_dir;
};

TEST_F(HtmlReport, AnalyzePageDrawsEveryChart) {
    const auto page = analyze_page();
    const auto text = read_text(page);
    EXPECT_NE(text.find("\"perfetto\":\"analysis.json.gz\""), std::string::npos)
        << "the Perfetto trace is linked by its path relative to the page";
    const auto load = open_page(m_chromium, page, "analyze");
    EXPECT_EQ(joined(problems_of(load, {"lost-by-cause", "compute-heatmap", "comm-heatmap",
                                        "heavy-micro-batches", "heavy-cp-ranks", "work-check",
                                        "relative-speed", "last-arrivals"})),
              "");
}

TEST_F(HtmlReport, TunePageDrawsEveryChart) {
    const auto page = m_dir / "tune.html";
    auto r = run_wlbtune("tune --data 'synthetic:lognormal?mu=8&sigma=1&n=3000&seed=3' --context "
                         "16k --layout tp=2,cp=2,pp=2,dp=1 --model 550m --html '" +
                         page.string() + "'");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto load = open_page(m_chromium, page, "tune");
    EXPECT_EQ(joined(problems_of(load, {"tune-scatter", "knobs"})), "");
}

TEST_F(HtmlReport, SimulateComparePageDrawsEveryChart) {
    const auto page = m_dir / "simulate.html";
    auto r = run_wlbtune("simulate --data 'synthetic:wlbllm?n=4000&seed=5' --context 32k --layout "
                         "tp=2,cp=2,pp=4,dp=1 --steps 8 --compare --html '" +
                         page.string() + "'");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto load = open_page(m_chromium, page, "simulate-compare");
    EXPECT_EQ(joined(problems_of(load, {"speedup", "imbalance-box", "imbalance-steps", "step-times",
                                        "delay-cdf"})),
              "");
}

TEST_F(HtmlReport, PackComparePageDrawsEveryChart) {
    const auto page = m_dir / "pack.html";
    auto r = run_wlbtune("pack --data 'synthetic:wlbllm?n=4000&seed=5' --context 32k --steps 10 "
                         "--compare plain,fixed-greedy,varlen,wlb,ffd --html '" +
                         page.string() + "'");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto load = open_page(m_chromium, page, "pack-compare");
    EXPECT_EQ(
        joined(problems_of(load, {"speedup", "imbalance-box", "imbalance-steps", "delay-cdf"})),
        "");
}

TEST_F(HtmlReport, PageFitsANarrowWindow) {
    const auto page = analyze_page();
    const auto load = open_page(m_chromium, page, "analyze-narrow", 390, 2400);
    EXPECT_EQ(joined(problems_of(load, {"lost-by-cause", "compute-heatmap"})), "");
}

// The checker itself: each of these pages is broken in one way, and it must say so.
class HtmlCheckFails : public HtmlReport {
protected:
    /// The analyze page with `html` inserted just before page.js's script element.
    fs::path broken_page(const std::string& name, const std::string& html) {
        auto text = read_text(analyze_page());
        const std::string marker = "<script>// wlbtune HTML report: what every page shares";
        const auto at = text.find(marker);
        EXPECT_NE(at, std::string::npos);
        text.insert(at, html);
        const auto path = m_dir / (name + ".html");
        std::ofstream(path, std::ios::binary) << text;
        return path;
    }
};

TEST_F(HtmlCheckFails, WhenChartsDrawNothing) {
    // Every chart is set up with its series' data emptied.
    const auto page = broken_page("no-marks", R"(<script>
const wlbInit = echarts.init;
echarts.init = function () {
    const chart = wlbInit.apply(echarts, arguments);
    const setOption = chart.setOption.bind(chart);
    chart.setOption = function (option) {
        for (const s of [].concat(option.series || [])) { s.data = []; delete s.markLine; }
        return setOption.apply(null, arguments);
    };
    return chart;
};
</script>)");
    const auto problems = problems_of(open_page(m_chromium, page, "broken-no-marks"), {});
    ASSERT_FALSE(problems.empty());
    EXPECT_NE(joined(problems).find("chart compute-heatmap drew nothing"), std::string::npos)
        << joined(problems);
}

TEST_F(HtmlCheckFails, OnAScriptError) {
    const auto page =
        broken_page("script-error", "<script>wlb_test_undefined_function();</script>");
    const auto problems = joined(problems_of(open_page(m_chromium, page, "broken-script"), {}));
    EXPECT_NE(problems.find("page: error: Uncaught ReferenceError"), std::string::npos) << problems;
    EXPECT_NE(problems.find("console: "), std::string::npos) << problems;
}

TEST_F(HtmlCheckFails, OnAFailedLoad) {
    const auto page = broken_page("failed-load", "<img src=\"wlb-test-missing-image.png\">");
    const auto problems = joined(problems_of(open_page(m_chromium, page, "broken-load"), {}));
    EXPECT_NE(problems.find("failed load: "), std::string::npos) << problems;
}

} // namespace
