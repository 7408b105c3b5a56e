// End-to-end: wlbtune simulate writes a trace directory with a slow rank injected; wlbtune
// analyze reads it back, names the slow worker, writes wlbtune.analysis/1 and a Perfetto trace
// that passes the exporter's own rules; bad input exits with the documented codes.
#include "reports/perfetto_check.hpp"
#include "support/cli_runner.hpp"

#include <fmt/format.h>
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

// `simulate --trace X` then `analyze X`: wlbtune's own Perfetto export is read as the trace it
// is (the same answer as its trace directory, labelled simulated); the Perfetto trace analyze
// writes is refused with the command that works; an export written before exports were marked
// is recognized by its otherData.
TEST(CliAnalyze, OwnPerfettoExportsAreAnalyzedOrRefusedWithTheCommand) {
    temp_dir dir;
    const auto batch = write_batch(dir);
    const auto traces = (dir / "traces").string();
    const auto perfetto = (dir / "sim.json").string();
    auto sim = run_wlbtune("simulate --batch '" + batch +
                           "' --model 550m --layout tp=2,cp=2,pp=2,dp=2 --inject slow-rank=5:1.4 "
                           "--trace-dir '" +
                           traces + "' --trace '" + perfetto + "'");
    ASSERT_EQ(sim.exit_code, 0) << sim.err;
    const auto j_dir = (dir / "dir.json").string();
    const auto j_pf = (dir / "pf.json").string();
    auto a = run_wlbtune("analyze '" + traces + "' --json '" + j_dir + "'");
    ASSERT_EQ(a.exit_code, 0) << a.err;
    auto b = run_wlbtune("analyze '" + perfetto + "' --json '" + j_pf + "'");
    ASSERT_EQ(b.exit_code, 0) << b.err;
    EXPECT_NE(b.out.find("wlbtune Perfetto traces"), std::string::npos) << b.out;
    EXPECT_NE(b.out.find("simulated trace: its timeline is the simulator's"), std::string::npos)
        << b.out;
    EXPECT_NE(b.out.find("Dominant cause: a slow worker"), std::string::npos) << b.out;
    const auto jd = nlohmann::json::parse(wlb::test::read_text(j_dir));
    const auto jp = nlohmann::json::parse(wlb::test::read_text(j_pf));
    EXPECT_EQ(jp["job"]["format"], "perfetto");
    EXPECT_EQ(jp["job"]["source"], "simulated");
    EXPECT_EQ(jp["job"]["layout"], jd["job"]["layout"]);
    EXPECT_EQ(jp["summary"]["dominant_cause"], jd["summary"]["dominant_cause"]);
    EXPECT_NEAR(jp["summary"]["lost_seconds_per_step"].get<double>(),
                jd["summary"]["lost_seconds_per_step"].get<double>(), 1e-9);
    EXPECT_NEAR(jp["summary"]["measured_seconds_per_step"].get<double>(),
                jd["summary"]["measured_seconds_per_step"].get<double>(), 1e-9);

    // Before exports were marked: otherData had no generator and kind.
    std::string text = wlb::test::read_text(perfetto);
    const auto at = text.find("\"generator\":\"wlbtune\",");
    ASSERT_NE(at, std::string::npos);
    text.erase(at, std::string("\"generator\":\"wlbtune\",").size());
    const auto kind = text.find("\"kind\":\"trace\",");
    ASSERT_NE(kind, std::string::npos);
    text.erase(kind, std::string("\"kind\":\"trace\",").size());
    const auto legacy = (dir / "legacy.json").string();
    std::ofstream(legacy) << text;
    auto c = run_wlbtune("analyze '" + legacy + "'");
    EXPECT_EQ(c.exit_code, 0) << c.err;
    EXPECT_NE(c.out.find("Dominant cause: a slow worker"), std::string::npos) << c.out;

    // The Perfetto trace of analyze itself: exit 3 naming the traces it was made from.
    const auto analysis = (dir / "analysis.json.gz").string();
    ASSERT_EQ(run_wlbtune("analyze '" + traces + "' --perfetto '" + analysis + "'").exit_code, 0);
    auto d = run_wlbtune("analyze '" + analysis + "'");
    EXPECT_EQ(d.exit_code, 3) << d.out;
    EXPECT_NE(d.err.find("wlbtune analyze '" + traces + "'"), std::string::npos) << d.err;
    EXPECT_EQ(d.out, "");
}

// A timeline whose process and thread names say no rank: exit 3 listing the names and
// --rank-map; with the map, the analysis; a malformed map is a usage error.
TEST(CliAnalyze, RankMapPlacesNamesNoConventionGives) {
    temp_dir dir;
    std::string ev;
    auto add = [&](const std::string& e) {
        ev += (ev.empty() ? "" : ",\n") + e;
    };
    for (int d = 0; d < 2; ++d) {
        add(fmt::format(
            R"({{"ph":"M","pid":{},"name":"process_name","args":{{"name":"worker-{}"}}}})", 10 + d,
            d));
        // Two micro-batches, forward then backward, on one stage.
        std::int64_t t = 0;
        for (int m = 0; m < 2; ++m) {
            add(fmt::format(
                R"({{"ph":"X","pid":{},"tid":1,"name":"forward-compute","ts":{},"dur":{},"args":{{"step":0,"micro_batch":{}}}}})",
                10 + d, t, 100 * (d + 1), m));
            t += 100 * (d + 1);
        }
        for (int m = 0; m < 2; ++m) {
            add(fmt::format(
                R"({{"ph":"X","pid":{},"tid":1,"name":"backward-compute","ts":{},"dur":{},"args":{{"step":0,"micro_batch":{}}}}})",
                10 + d, t, 200 * (d + 1), m));
            t += 200 * (d + 1);
        }
    }
    const auto p = (dir / "opaque.json").string();
    std::ofstream(p) << "{\"traceEvents\":[\n" << ev << "\n]}\n";
    auto r = run_wlbtune("analyze '" + p + "'");
    EXPECT_EQ(r.exit_code, 3) << r.out;
    EXPECT_NE(r.err.find("\"worker-1\""), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("--rank-map"), std::string::npos) << r.err;
    r = run_wlbtune("analyze '" + p + "' --rank-map 'process:worker-(\\d+) -> rank=$1'");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("2 of 2 ranks"), std::string::npos) << r.out;
    r = run_wlbtune("analyze '" + p + "' --rank-map 'process:worker -> ep=1'");
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find("unknown axis \"ep\""), std::string::npos) << r.err;
}

// The change analyze recommends is one the input allows and runs as printed (issue #16: it
// recommended per-document sharding on a run that used it, `shard --plan PLAN` for a run with
// no plan, a placeholder partition after saying none helps), and the share lost it headlines is
// never below one cause's share.
TEST(CliAnalyze, AdviceIsWhatTheInputAllowsAndRunsAsPrinted) {
    temp_dir dir;
    const std::string data = "--data 'synthetic:wlbllm?n=4000&seed=5' --context 32k --steps 2";
    auto analyze_json = [&](const std::string& name, const std::string& sim_args) {
        const auto traces = (dir / name).string();
        auto sim =
            run_wlbtune("simulate " + data + " " + sim_args + " --trace-dir '" + traces + "'");
        EXPECT_EQ(sim.exit_code, 0) << sim.err;
        const auto json = (dir / (name + ".json")).string();
        auto a = run_wlbtune("analyze '" + traces + "' --json '" + json + "'");
        EXPECT_EQ(a.exit_code, 0) << a.err;
        EXPECT_EQ(a.out.find("PLAN"), std::string::npos) << a.out;
        EXPECT_EQ(a.out.find("L0,L1"), std::string::npos) << a.out;
        auto j = nlohmann::json::parse(wlb::test::read_text(json));
        double most = 0.0;
        for (const auto& c : j["causes"])
            most = std::max(most, c["lost_seconds_per_step"].get<double>());
        EXPECT_GE(j["summary"]["lost_seconds_per_step"].get<double>(), most - 1e-12) << name;
        return j;
    };
    auto run_printed = [&](const std::string& command) {
        ASSERT_EQ(command.rfind("wlbtune ", 0), 0u) << command;
        EXPECT_EQ(command.find("..."), std::string::npos) << command;
        auto r = run_wlbtune(command.substr(8));
        EXPECT_EQ(r.exit_code, 0) << command << "\n" << r.err;
    };
    // Per-seq sharding with a CP imbalance: adaptive sharding, the same job simulated.
    auto j = analyze_json("perseq", "--layout tp=2,cp=2,pp=2,dp=1 --sharding per-seq");
    ASSERT_EQ(j["recommendation"]["cause"], "cp_sharding");
    auto command = j["recommendation"]["command"].get<std::string>();
    EXPECT_NE(command.find("wlbtune simulate"), std::string::npos) << command;
    EXPECT_NE(command.find("--sharding adaptive"), std::string::npos) << command;
    EXPECT_EQ(command.find("--trace-dir"), std::string::npos) << "never overwrites the trace";
    run_printed(command);
    // Already adaptive (simulate's default): not adaptive or per-doc again, but a search.
    j = analyze_json("adaptive", "--layout tp=2,cp=2,pp=2,dp=1");
    ASSERT_EQ(j["recommendation"]["cause"], "cp_sharding");
    command = j["recommendation"]["command"].get<std::string>();
    EXPECT_EQ(command.find("--sharding"), std::string::npos) << command;
    EXPECT_NE(j["recommendation"]["change"].get<std::string>().find("already shards with "
                                                                    "adaptive"),
              std::string::npos);
    EXPECT_EQ(command.rfind("wlbtune tune", 0), 0u) << command;
    run_printed(command);
    // Stages uneven by less than a layer: nothing to change, no command.
    j = analyze_json("stages", "--layout tp=2,cp=1,pp=4,dp=1 --packing plain --sharding per-seq");
    ASSERT_EQ(j["recommendation"]["cause"], "stage_partitioning");
    EXPECT_TRUE(j["recommendation"]["command"].is_null());
    EXPECT_NE(j["recommendation"]["change"].get<std::string>().find("nothing to change"),
              std::string::npos);
}

} // namespace
