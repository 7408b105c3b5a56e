// End-to-end in a real browser: each kind of HTML page (analyze, tune, simulate --compare, pack
// --compare) is written by wlbtune and opened in headless Chromium (Debian's package, installed
// by scripts/install-deps.sh). A page passes when the browser saw no error, no console message
// and no load (a self-contained page loads nothing), every chart drew marks, the charts the page
// must have are there, and drawing finished; a screenshot of each is saved under the build dir
// (html-screenshots/). The checker is shown to fail: on a page whose charts draw nothing, on a
// script error and on a failed load.
//
// What the browser saw comes from two places: the page's own self-check (<pre id="wlb-check">,
// reports/html/assets/page.js), read with --dump-dom, and Chromium's log (--enable-logging
// =stderr), where every console message appears as a CONSOLE line. Skips where Chromium is
// missing.
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

using wlb::test::read_text;
using wlb::test::run_wlbtune;
using wlb::test::temp_dir;

namespace {

namespace fs = std::filesystem;

std::optional<std::string> find_chromium() {
    if (const char* env = std::getenv("WLB_CHROMIUM"); env && *env)
        return std::string(env);
    const char* path = std::getenv("PATH");
    std::istringstream dirs(path ? path : "");
    std::string dir;
    while (std::getline(dirs, dir, ':'))
        for (const char* name : {"chromium", "chromium-browser", "google-chrome"})
            if (!dir.empty() && fs::exists(fs::path(dir) / name))
                return (fs::path(dir) / name).string();
    return std::nullopt;
}

const fs::path screenshot_dir = fs::path(WLB_BINARY_DIR) / "html-screenshots";

struct page_load {
    int exit_code = -1;
    std::optional<nlohmann::json> check; ///< the page's self-check, as the DOM held it
    std::vector<std::string> console;    ///< Chromium's CONSOLE log lines
    fs::path screenshot;
};

std::string unescape_html(std::string s) {
    auto replace = [&](const std::string& from, const std::string& to) {
        for (auto at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
            s.replace(at, from.size(), to);
    };
    replace("&lt;", "<");
    replace("&gt;", ">");
    replace("&quot;", "\"");
    replace("&amp;", "&");
    return s;
}

/// Opens `page` in headless Chromium at width x height: its DOM after the load event, its
/// console log and a screenshot (`name`.png under the build dir).
page_load open_page(const std::string& chromium, const fs::path& page, const std::string& name,
                    int width = 1280, int height = 2400) {
    temp_dir profile; // a fresh user data dir for each run
    const auto dom = profile / "dom.html";
    const auto log = profile / "log.txt";
    fs::create_directories(screenshot_dir);
    page_load r;
    r.screenshot = screenshot_dir / (name + ".png");
    fs::remove(r.screenshot);
    const std::string cmd =
        "DBUS_SESSION_BUS_ADDRESS=disabled: timeout 120 '" + chromium +
        "' --headless --no-sandbox --disable-gpu --disable-quic --no-first-run "
        "--disable-background-networking --disable-component-update --disable-sync "
        "--hide-scrollbars --enable-logging=stderr --v=0 --user-data-dir='" +
        (profile / "profile").string() + "' --window-size=" + std::to_string(width) + "," +
        std::to_string(height) + " --screenshot='" + r.screenshot.string() +
        "' --dump-dom 'file://" + fs::absolute(page).string() + "' >'" + dom.string() + "' 2>'" +
        log.string() + "' </dev/null";
    const int status = std::system(cmd.c_str());
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    const auto text = read_text(dom);
    const std::string open = "<pre id=\"wlb-check\" hidden=\"\">";
    if (const auto at = text.find(open); at != std::string::npos) {
        const auto end = text.find("</pre>", at);
        auto j = nlohmann::json::parse(
            unescape_html(text.substr(at + open.size(), end - at - open.size())), nullptr, false);
        if (!j.is_discarded())
            r.check = std::move(j);
    }
    std::istringstream lines(read_text(log));
    std::string line;
    while (std::getline(lines, line))
        if (line.find(":CONSOLE") != std::string::npos)
            r.console.push_back(line);
    return r;
}

/// Everything wrong with a load; empty when the page passed. `charts`: ids it must have drawn.
std::vector<std::string> problems_of(const page_load& l, const std::set<std::string>& charts) {
    std::vector<std::string> out;
    if (l.exit_code != 0)
        out.push_back("chromium exited with " + std::to_string(l.exit_code));
    for (const auto& c : l.console)
        out.push_back("console: " + c);
    if (!l.check) {
        out.push_back("the page's self-check did not run (no JSON in #wlb-check)");
        return out;
    }
    const auto& k = *l.check;
    for (const auto& p : k["problems"])
        out.push_back("page: " + p.get<std::string>());
    for (const auto& res : k["resources"])
        out.push_back("loaded " + res.get<std::string>() + " (a page must load nothing)");
    if (k["ready_ms"].is_null())
        out.push_back("the page's script did not finish drawing (ready_ms null)");
    if (k["overflow_px"].get<double>() > 0)
        out.push_back("the page is " + k["overflow_px"].dump() + " px wider than the window");
    std::set<std::string> drawn;
    for (const auto& c : k["charts"]) {
        const auto id = c["id"].get<std::string>();
        if (c["marks"].get<int>() <= 0 || c["empty_series"].get<int>() > 0)
            out.push_back("chart " + id + " drew nothing: " + c.dump());
        else
            drawn.insert(id);
    }
    for (const auto& id : charts)
        if (!drawn.count(id))
            out.push_back("chart " + id + " is missing or empty");
    if (!fs::exists(l.screenshot) || fs::file_size(l.screenshot) < 10000)
        out.push_back("no screenshot (or a blank one) at " + l.screenshot.string());
    return out;
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
