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

// ---- --data: pack, shard and simulate documents (tuner::evaluate) ----

namespace {

const std::string small_data =
    "--data 'synthetic:wlbllm?n=4000&seed=5' --model 550m --layout tp=2,cp=2,pp=4,dp=1 "
    "--context 32k";

TEST(CliSimulateData, TablesJsonAndATraceThatPassesTheChecker) {
    wlb::test::temp_dir dir;
    const auto trace = (dir / "t.json.gz").string();
    const auto json = (dir / "s.json").string();
    auto r = run_wlbtune("simulate " + small_data +
                         " --packing wlb --sharding adaptive --steps 6 " + "--trace '" + trace +
                         "' --trace-dir '" + (dir / "tdir").string() + "' --json '" + json + "'");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.err, ""); // no progress line when stderr is not a terminal
    for (const char* part : {"simulated", "candidate: wlb", "+ adaptive", "packing (predicted",
                             "CP sharding (predicted)", "slowest ranks", "synthetic:wlbllm"})
        EXPECT_NE(r.out.find(part), std::string::npos) << part << "\n" << r.out;
    const auto check = wlb::reports::check_perfetto_file(trace);
    for (const auto& p : check.problems)
        ADD_FAILURE() << p;
    EXPECT_EQ(check.processes, 16u);
    EXPECT_GT(check.flows, 0u);
    EXPECT_GT(check.slices, 0u);

    const auto j = nlohmann::json::parse(wlb::test::read_text(json));
    EXPECT_EQ(j.at("schema"), "wlbtune.simulate/1");
    EXPECT_EQ(j.at("simulated"), true);
    ASSERT_EQ(j.at("steps").size(), 6u);
    double total = 0.0;
    for (const auto& s : j.at("steps"))
        total += s.at("step_seconds").get<double>();
    EXPECT_NEAR(total, j.at("total_seconds").get<double>(), 1e-9);
    EXPECT_NEAR(j.at("mean_step_seconds").get<double>(), total / 6, 1e-12);
    const auto& c = j.at("candidate");
    EXPECT_EQ(c.at("packing_config").at("policy"), "wlb");
    EXPECT_EQ(c.at("packing_config").at("context_tokens"), 32768);
    EXPECT_EQ(c.at("packing_config").at("micro_batches"), 4); // the layout's pp
    EXPECT_EQ(c.at("sharding_spec").at("policy"), "adaptive");
    EXPECT_EQ(c.at("steps"), 6);
    EXPECT_EQ(c.at("packing").at("steps"), 6);
    EXPECT_GE(c.at("packing").at("predicted_imbalance").at("mean").get<double>(), 1.0);
    EXPECT_TRUE(c.at("packing").at("delay_iterations").contains("p99"));
    EXPECT_EQ(c.at("sharding").at("micro_batches"), 24); // 6 steps x 4 micro-batches
    EXPECT_EQ(c.at("documents_exhausted"), false);
    EXPECT_GT(j.at("data").at("documents").get<int>(), 0);
    const auto manifest =
        nlohmann::json::parse(wlb::test::read_text(dir / "tdir" / "manifest.json"));
    EXPECT_EQ(manifest.at("schema"), "wlbtune.trace/1");
    EXPECT_EQ(manifest.at("ranks").size(), 16u);
}

TEST(CliSimulateData, CompareRunsEveryCandidateOnTheSameDocuments) {
    auto r = run_wlbtune("simulate " + small_data + " --steps 4 --compare --json -");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    const auto& cmp = j.at("compare");
    ASSERT_EQ(cmp.size(), 8u);
    EXPECT_EQ(cmp.at(0).at("name"), "plain + per-seq");
    EXPECT_EQ(cmp.at(0).at("role"), "baseline");
    EXPECT_EQ(cmp.at(1).at("name"), "plain-whole + per-seq"); // the named second baseline
    EXPECT_EQ(cmp.at(1).at("role"), "whole documents");
    EXPECT_EQ(j.at("compare_baseline"), "plain + per-seq");
    const double base = cmp.at(0).at("mean_step_seconds").get<double>();
    int chosen = 0;
    for (const auto& c : cmp) {
        EXPECT_EQ(c.at("steps"), 4);
        EXPECT_NEAR(c.at("predicted_speedup").get<double>(),
                    base / c.at("mean_step_seconds").get<double>(), 1e-12);
        if (c.at("role").get<std::string>().find("chosen") != std::string::npos) {
            ++chosen; // the defaults: wlb + adaptive, which is the "both" candidate
            EXPECT_EQ(c.at("role"), "both, chosen");
            EXPECT_EQ(c.at("name"), j.at("candidate").at("name"));
            EXPECT_EQ(c.at("mean_step_seconds"), j.at("mean_step_seconds"));
        }
    }
    EXPECT_EQ(chosen, 1);
    EXPECT_NEAR(cmp.at(0).at("predicted_speedup").get<double>(), 1.0, 1e-15);

    // The table says what it is, and an extra --packing/--sharding candidate is appended.
    auto t = run_wlbtune("simulate " + small_data +
                         " --steps 3 --compare --packing varlen --sharding per-doc");
    ASSERT_EQ(t.exit_code, 0) << t.err;
    for (const char* part :
         {"predicted step time and speedup over plain + per-seq", "simulated", "baseline",
          "packing only", "sharding only", "chosen", "varlen", "1.000x"})
        EXPECT_NE(t.out.find(part), std::string::npos) << part << "\n" << t.out;
}

TEST(CliSimulateData, DefaultsAreTheEmbeddedWorkloadAt7B128K) {
    auto r = run_wlbtune("simulate --steps 2 --json -");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j.at("layout").at("spec"), "tp=8,cp=2,pp=4,dp=1");
    EXPECT_EQ(j.at("layout").at("world_size"), 64);
    EXPECT_EQ(j.at("model"), "7b");
    EXPECT_EQ(j.at("hardware"), "h100-sxm");
    EXPECT_EQ(j.at("candidate").at("packing_config").at("context_tokens"), 131072);
    EXPECT_EQ(j.at("candidate").at("packing_config").at("policy"), "wlb");
    EXPECT_EQ(j.at("candidate").at("sharding_spec").at("policy"), "adaptive");
    EXPECT_NE(j.at("data").at("description").get<std::string>().find("embedded"),
              std::string::npos);
}

TEST(CliSimulateData, SlowRankSlowsEveryStep) {
    const std::string base = "simulate " + small_data + " --steps 3 --json -";
    auto a = run_wlbtune(base);
    auto b = run_wlbtune(base + " --inject slow-rank=5:1.5");
    ASSERT_EQ(a.exit_code, 0) << a.err;
    ASSERT_EQ(b.exit_code, 0) << b.err;
    const auto ja = nlohmann::json::parse(a.out), jb = nlohmann::json::parse(b.out);
    for (std::size_t s = 0; s < 3; ++s)
        EXPECT_GT(jb.at("steps").at(s).at("step_seconds").get<double>(),
                  ja.at("steps").at(s).at("step_seconds").get<double>());
    EXPECT_EQ(jb.at("faults").at(0), "slow-rank=5:1.5");
}

TEST(CliSimulateData, BadInputsSayWhich) {
    const std::pair<std::string, std::string> bad_input[] = {
        {"--packing nope", "unknown packing policy \"nope\""},
        {"--sharding nope", "--sharding"},
        {"--smax 0.5x", "--smax"},
        {"--thresholds 64k,24k", "--thresholds"},
        {"--steps 0", "--steps must be >= 1"},
        {"--inject slow-rank=999:2", "rank 999 is outside"},
        {"--sharding hybrid --hybrid-threshold lots", "--hybrid-threshold \"lots\""},
        {"--hybrid-threshold 8k", "--hybrid-threshold applies to --sharding hybrid only"},
    };
    for (const auto& [args, part] : bad_input) {
        auto r = run_wlbtune("simulate " + small_data + " " + args);
        EXPECT_EQ(r.exit_code, 3) << args << "\n" << r.err;
        EXPECT_NE(r.err.find(part), std::string::npos) << args << "\n" << r.err;
    }
    auto missing = run_wlbtune("simulate --data json:/nonexistent/lengths.json --steps 2");
    EXPECT_EQ(missing.exit_code, 3) << missing.err;
    EXPECT_NE(missing.err.find("/nonexistent/lengths.json"), std::string::npos) << missing.err;
    // --batch takes sharded steps as given: packing and sharding options make no sense with it.
    auto r = run_wlbtune("simulate --batch x.json --packing wlb");
    EXPECT_EQ(r.exit_code, 2) << r.err;
    r = run_wlbtune("simulate --batch x.json --compare");
    EXPECT_EQ(r.exit_code, 2) << r.err;
}

} // namespace
