// End-to-end: wlbtune simulate writes a trace directory with a slow rank injected; wlbtune
// analyze reads it back, names the slow worker, writes wlbtune.analysis/1 and a Perfetto trace
// that passes the exporter's own rules; bad input exits with the documented codes.
#include "reports/perfetto_check.hpp"
#include "support/cli_runner.hpp"

#include <fstream>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace {

using wlb::test::run_wlbtune;
using wlb::test::temp_dir;

// Two steps, dp=2, cp=2, 4 micro-batches of one 16K document each, 2 x CP chunks per rank.
std::string write_batch(const temp_dir& dir) {
    nlohmann::json steps = nlohmann::json::array();
    for (int s = 0; s < 2; ++s) {
        nlohmann::json reps = nlohmann::json::array();
        for (int d = 0; d < 2; ++d) {
            nlohmann::json mbs = nlohmann::json::array();
            for (int m = 0; m < 4; ++m) {
                const std::int64_t q = 4096, id = (s * 2 + d) * 4 + m;
                mbs.push_back({{{id, 0, q}, {id, 3 * q, q}}, {{id, q, q}, {id, 2 * q, q}}});
            }
            reps.push_back(mbs);
        }
        steps.push_back({{"step", s}, {"replicas", reps}});
    }
    const auto path = (dir / "batch.json").string();
    std::ofstream(path) << nlohmann::json{{"schema", "wlbtune.sharded_batch/1"}, {"steps", steps}};
    return path;
}

TEST(CliAnalyze, NamesTheInjectedSlowWorkerAndWritesItsReports) {
    temp_dir dir;
    const auto batch = write_batch(dir);
    const auto traces = (dir / "traces").string();
    auto sim = run_wlbtune("simulate --batch '" + batch +
                           "' --model 550m --layout tp=2,cp=2,pp=2,dp=2 --inject slow-rank=5:1.4 "
                           "--trace-dir '" +
                           traces + "'");
    ASSERT_EQ(sim.exit_code, 0) << sim.err;
    const auto json = (dir / "report.json").string();
    const auto perfetto = (dir / "analysis.json.gz").string();
    auto r =
        run_wlbtune("analyze '" + traces + "' --json '" + json + "' --perfetto '" + perfetto + "'");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    // The answer first: the share lost and the dominant cause.
    EXPECT_EQ(r.out.find("wlbtune analyze:"), 0u);
    EXPECT_NE(r.out.find("of step time lost"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("Dominant cause: a slow worker"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("ranks 4-5"), std::string::npos) << "rank 5's TP group named";

    const auto j = nlohmann::json::parse(wlb::test::read_text(json));
    EXPECT_EQ(j["schema"], "wlbtune.analysis/1");
    EXPECT_TRUE(j.contains("tool") && j.contains("command_line") && j.contains("inputs"));
    EXPECT_EQ(j["inputs"].size(), 18u) << "the manifest, 16 rank files and the batches";
    EXPECT_TRUE(j["work_check"]["available"].get<bool>()) << j["work_check"].dump();
    EXPECT_EQ(j["job"]["layout"], "tp=2,cp=2,pp=2,dp=2");
    EXPECT_EQ(j["summary"]["dominant_cause"], "slow_worker");
    EXPECT_EQ(j["summary"]["attributed_steps"], 2);
    EXPECT_GT(j["summary"]["lost_fraction"].get<double>(), 0.05);
    EXPECT_EQ(j["recommendation"]["cause"], "slow_worker");
    ASSERT_EQ(j["steps"].size(), 2u);
    EXPECT_EQ(j["steps"][0]["breakdown"].size(), 16u);
    // Replaying the simulator's own trace reproduces its step time.
    for (const auto& s : j["steps"])
        EXPECT_NEAR(s["replay_seconds"].get<double>(), s["measured_seconds"].get<double>(),
                    1e-6 * s["measured_seconds"].get<double>());

    const auto check = wlb::reports::check_perfetto_file(perfetto);
    EXPECT_TRUE(check.ok()) << (check.problems.empty() ? "" : check.problems.front());
    EXPECT_EQ(check.processes, 16u);

    // --steps: one step of the two, then a range with no step in it.
    auto one = run_wlbtune("analyze '" + traces + "' --steps 1");
    ASSERT_EQ(one.exit_code, 0) << one.err;
    EXPECT_NE(one.out.find("steps 1 of 0-1 (--steps 1)"), std::string::npos) << one.out;
    EXPECT_NE(one.out.find("1 of 1 steps attributed"), std::string::npos) << one.out;
    auto none = run_wlbtune("analyze '" + traces + "' --steps 5:");
    EXPECT_EQ(none.exit_code, 3);
    EXPECT_NE(none.err.find("--steps \"5:\" leaves no step: the trace has steps 0-1"),
              std::string::npos)
        << none.err;
}

TEST(CliAnalyze, BadInputExitCodes) {
    temp_dir dir;
    auto r = run_wlbtune("analyze '" + (dir / "nothing-here").string() + "'");
    EXPECT_EQ(r.exit_code, 3) << r.err;
    EXPECT_NE(r.err.find("nothing-here"), std::string::npos);
    r = run_wlbtune("analyze '" + dir.path().string() + "' --format chrome");
    EXPECT_EQ(r.exit_code, 2) << r.err;
    r = run_wlbtune("analyze '" + dir.path().string() + "' --clock-offset 3=soon");
    EXPECT_EQ(r.exit_code, 2) << r.err;
    std::ofstream(dir / "empty.json") << "{\"traceEvents\": [";
    const auto json = (dir / "err.json").string();
    r = run_wlbtune("analyze '" + (dir / "empty.json").string() + "' --json '" + json + "'");
    EXPECT_EQ(r.exit_code, 3) << r.err;
    EXPECT_EQ(nlohmann::json::parse(wlb::test::read_text(json))["schema"], "wlbtune.error/1");
}

} // namespace
