// End-to-end: wlbtune simulate on a hand-built sharded batch: tables, JSON, traces that pass the
// Perfetto checker, fault injection and clear errors.
#include "reports/perfetto_check.hpp"
#include "support/cli_runner.hpp"

#include <fstream>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using wlb::test::run_wlbtune;

namespace {

// Two steps, dp=1, cp=2, 4 micro-batches of one document each, split per sequence by hand.
std::string write_batch(const wlb::test::temp_dir& dir) {
    nlohmann::json steps = nlohmann::json::array();
    for (int s = 0; s < 2; ++s) {
        nlohmann::json mbs = nlohmann::json::array();
        for (int m = 0; m < 4; ++m) {
            const std::int64_t n = 4096 * (m + 1 + s);
            const std::int64_t q = n / 4;
            mbs.push_back({{{m, 0, q}, {m, 3 * q, q}}, {{m, q, q}, {m, 2 * q, q}}});
        }
        steps.push_back({{"step", s}, {"replicas", {mbs}}});
    }
    const auto path = (dir / "batch.json").string();
    std::ofstream(path) << nlohmann::json{{"schema", "wlbtune.sharded_batch/1"}, {"steps", steps}};
    return path;
}

TEST(CliSimulate, TablesJsonAndTracesThatPassTheChecker) {
    wlb::test::temp_dir dir;
    const auto batch = write_batch(dir);
    const auto trace = (dir / "t.json.gz").string();
    const auto json = (dir / "s.json").string();
    auto r = run_wlbtune("simulate --batch '" + batch +
                         "' --model 550m --layout tp=2,cp=2,pp=4,dp=1 --trace '" + trace +
                         "' --trace-dir '" + (dir / "tdir").string() + "' --json '" + json + "'");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("simulated"), std::string::npos);
    EXPECT_NE(r.out.find("slowest ranks"), std::string::npos);
    auto check = wlb::reports::check_perfetto_file(trace);
    for (const auto& p : check.problems)
        ADD_FAILURE() << p;
    EXPECT_EQ(check.processes, 16u);
    EXPECT_GT(check.flows, 0u);
    auto j = nlohmann::json::parse(wlb::test::read_text(json));
    EXPECT_EQ(j.at("schema"), "wlbtune.simulate/1");
    EXPECT_EQ(j.at("simulated"), true);
    ASSERT_EQ(j.at("steps").size(), 2u);
    double total = 0.0;
    for (const auto& s : j.at("steps")) {
        total += s.at("step_seconds").get<double>();
        double crit = 0.0;
        for (const auto& [k, v] : s.at("critical_path_seconds").items())
            crit += v.get<double>();
        EXPECT_NEAR(crit, s.at("step_seconds").get<double>(), 1e-9); // the path tiles the step
    }
    EXPECT_NEAR(total, j.at("total_seconds").get<double>(), 1e-9);
    auto manifest = nlohmann::json::parse(wlb::test::read_text(dir / "tdir" / "manifest.json"));
    EXPECT_EQ(manifest.at("schema"), "wlbtune.trace/1");
    EXPECT_EQ(manifest.at("ranks").size(), 16u);
}

TEST(CliSimulate, SlowRankSlowsTheStepAndIsNamed) {
    wlb::test::temp_dir dir;
    const auto batch = write_batch(dir);
    const std::string base =
        "simulate --batch '" + batch + "' --model 550m --layout tp=2,cp=2,pp=4,dp=1 --json -";
    auto a = run_wlbtune(base);
    auto b = run_wlbtune(base + " --inject slow-rank=5:1.5");
    ASSERT_EQ(a.exit_code, 0) << a.err;
    ASSERT_EQ(b.exit_code, 0) << b.err;
    auto ja = nlohmann::json::parse(a.out), jb = nlohmann::json::parse(b.out);
    EXPECT_GT(jb.at("total_seconds").get<double>(), ja.at("total_seconds").get<double>());
    const auto& slow = jb.at("steps").at(0).at("slowest_ranks").at(0);
    EXPECT_EQ(slow.at("rank"), 4); // rank 5 is TP rank 1 of the unit whose TP rank 0 is 4
    EXPECT_NE(slow.at("why").get<std::string>().find("slow-rank=5:1.5"), std::string::npos);
}

TEST(CliSimulate, BadInputsExitWithBadInputAndSayWhy) {
    wlb::test::temp_dir dir;
    const auto batch = write_batch(dir);
    const std::string base = "simulate --batch '" + batch + "' --model 550m ";
    const std::pair<std::string, std::string> cases[] = {
        {"--layout tp=2,cp=2,pp=4,dp=1 --inject slow-rank=99:2", "rank 99 is outside"},
        {"--layout tp=2,cp=2,pp=4,dp=1 --inject slow-rank=1", "no ':'"},
        {"--layout tp=2,cp=4,pp=4,dp=1", "sharded over 2 CP ranks"},
        {"--layout tp=2,cp=2,pp=4,dp=1 --partition 1,2,3", "has 3 entries"},
        {"--layout tp=2,cp=2,pp=4,dp=1,vpp=2 --schedule 1f1b", "vpp=2"},
    };
    for (const auto& [args, part] : cases) {
        auto r = run_wlbtune(base + args);
        EXPECT_EQ(r.exit_code, 3) << args << "\n" << r.err;
        EXPECT_NE(r.err.find(part), std::string::npos) << args << "\n" << r.err;
    }
    std::ofstream(dir / "bad.json")
        << R"({"schema":"wlbtune.sharded_batch/1","steps":[{"replicas":[[[[[0,0,-5]]]]]}]})";
    auto r = run_wlbtune("simulate --batch '" + (dir / "bad.json").string() + "' --layout tp=1");
    EXPECT_EQ(r.exit_code, 3);
    EXPECT_NE(r.err.find("steps[0].replicas[0][0][0][0]"), std::string::npos) << r.err;
}

} // namespace
