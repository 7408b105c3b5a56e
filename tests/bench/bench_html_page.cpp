// The analyze page of a large job in headless Chromium: how big it is and how long it takes to
// open (docs/benchmarks.md). A benchmark, not a test: the times depend on the machine.
//
//   wlbtune simulate --model 70b --layout tp=8,cp=4,pp=4,dp=2 --steps 50 --trace-dir big
//   build/tests/bench/bench_html_page big [RUNS]
//
// Analyzes the trace with the library (as wlbtune analyze does) and writes two pages: the one
// `wlbtune analyze --html` writes (a simulated trace's TP peers are copies of their TP rank 0, so
// its heatmaps have a row per TP group), and the same report with every rank a row (what a
// measured job of that size gets: its TP ranks were timed one by one). Opens each RUNS times
// (default 5) and prints, per page: heatmap rows x columns, bytes, and the median (min-max) of
// ready_ms (navigation start to every chart drawn, by the page's own clock), script_start_ms
// (the markup and the 1.1 MB charting library parsed), the slowest chart's draw, and Chromium's
// whole run (start, load, dump, exit). The load average before and after says how quiet the
// machine was.
#include "profiler/analysis/analysis.hpp"
#include "reports/analysis_report.hpp"
#include "reports/html/html_report.hpp"
#include "support/chromium.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

std::string load_average() {
    std::ifstream in("/proc/loadavg");
    std::string one, five, fifteen;
    in >> one >> five >> fifteen;
    return fmt::format("{} {} {}", one, five, fifteen);
}

struct spread {
    double median = 0, min = 0, max = 0;
};

spread spread_of(std::vector<double> v) {
    if (v.empty())
        return {};
    std::sort(v.begin(), v.end());
    const auto n = v.size();
    const double median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
    return {median, v.front(), v.back()};
}

std::string text(const spread& s, const char* unit) {
    return fmt::format("{:.0f} {} ({:.0f}-{:.0f})", s.median, unit, s.min, s.max);
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s TRACE_DIR [RUNS]\n", argv[0]);
        return 2;
    }
    const std::string trace = argv[1];
    const int runs = argc > 2 ? std::max(1, std::atoi(argv[2])) : 5;
    const auto chromium = wlb::test::find_chromium();
    if (!chromium) {
        std::fprintf(stderr, "chromium is not installed (scripts/install-deps.sh installs it)\n");
        return 2;
    }
    const auto result = wlb::profiler::analyze({trace}, {});
    const auto report =
        wlb::reports::analysis_json(result, wlb::reports::identify_inputs(result.job));
    auto every_rank = report;
    every_rank["job"]["tp_replicated"] = false;

    wlb::test::temp_dir dir;
    struct page {
        std::string name;
        nlohmann::json report;
    };
    const std::vector<page> pages = {{"as analyze --html writes it", report},
                                     {"every rank a row", every_rank}};
    fmt::print("bench_html_page: {} ({} ranks, {} steps), {} runs per page, load average {}\n",
               trace, report["job"]["world_size"].get<int>(), report["job"]["steps"].size(), runs,
               load_average());
    fmt::print("| page | heatmap rows x steps | bytes | ready | script start | slowest chart | "
               "chromium run |\n| --- | --- | --- | --- | --- | --- | --- |\n");
    for (const auto& p : pages) {
        const auto path = dir / "page.html";
        wlb::reports::write_html_report(wlb::reports::html_kind::analyze, p.report, path.string());
        const auto data = wlb::reports::html_page_data(wlb::reports::html_kind::analyze, p.report,
                                                       {}, path.string());
        std::vector<double> ready, start, slowest, wall;
        std::string slowest_id;
        for (int i = 0; i < runs; ++i) {
            const auto l = wlb::test::open_page(*chromium, path);
            const auto problems = wlb::test::problems_of(l, {});
            if (!problems.empty()) {
                fmt::print(stderr, "{}: {}\n", p.name, problems.front());
                return 1;
            }
            const auto& k = *l.check;
            ready.push_back(k["ready_ms"].get<double>());
            start.push_back(k["script_start_ms"].get<double>());
            double worst = 0;
            for (const auto& c : k["charts"])
                if (c["draw_ms"].get<double>() > worst) {
                    worst = c["draw_ms"].get<double>();
                    slowest_id = c["id"].get<std::string>();
                }
            slowest.push_back(worst);
            wall.push_back(l.wall_seconds * 1e3);
        }
        const auto& m = data["view"]["ranks"];
        fmt::print("| {} | {} x {} | {} | {} | {} | {} ({}) | {} |\n", p.name, m["rows"].size(),
                   m["columns"].size(), fs::file_size(path), text(spread_of(ready), "ms"),
                   text(spread_of(start), "ms"), text(spread_of(slowest), "ms"), slowest_id,
                   text(spread_of(wall), "ms"));
    }
    fmt::print("load average after: {}\n", load_average());
    return 0;
}
