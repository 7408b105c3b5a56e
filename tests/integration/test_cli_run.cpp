// wlbtune run end to end: one process without mpirun (world size 1), the refusals before any
// work (a world that does not match the layout, --backend cuda, --config), and an mpirun job
// whose trace directory reads back, exports a Perfetto file that perfetto_check accepts, and
// whose losses equal the single-process run's on the same steps.
#include "reports/perfetto_check.hpp"
#include "runtime/trace/trace.hpp"
#include "support/cli_runner.hpp"
#include "support/mpi_runner.hpp"

#include <cmath>
#include <filesystem>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace {

using wlb::test::read_text;
using wlb::test::run_mpi_wlbtune;
using wlb::test::run_wlbtune;
using wlb::test::temp_dir;

// Small documents (<= 256 tokens) so that tiny steps take milliseconds.
const std::string data = "--data 'synthetic:lognormal?mu=4&sigma=1&n=3000&seed=3&max=256' "
                         "--context 256 --model tiny";

nlohmann::json read_json(const std::filesystem::path& p) {
    return nlohmann::json::parse(read_text(p));
}

TEST(CliRun, WithoutMpirunTheWorldIsOneRankAndEveryStepIsReported) {
    temp_dir tmp;
    const auto json = tmp / "run.json";
    auto r = run_wlbtune("run " + data + " --steps 3 --packing varlen --sharding per-doc --json '" +
                         json.string() + "'");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("wlbtune run: backend cpu (float), layout tp=1,cp=1,pp=1,dp=1"),
              std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("mean step time over steps 1..2"), std::string::npos) << r.out;
    const auto j = read_json(json);
    EXPECT_EQ(j["schema"], "wlbtune.run/1");
    EXPECT_EQ(j["layout"]["world_size"], 1);
    EXPECT_EQ(j["packing"]["policy"], "varlen");
    ASSERT_EQ(j["steps"].size(), 3u);
    for (const auto& s : j["steps"]) {
        const double loss = s["loss"].get<double>();
        // Cross-entropy of a near-uniform prediction over the vocabulary of 128: about ln 128.
        EXPECT_GT(loss, 0.5 * std::log(128.0));
        EXPECT_LT(loss, 2.0 * std::log(128.0));
        EXPECT_GT(s["seconds"].get<double>(), 0.0);
        EXPECT_GT(s["predicted_seconds"].get<double>(), 0.0);
        EXPECT_GT(s["tokens"].get<std::int64_t>(), 0);
    }
}

TEST(CliRun, ALayoutOfAnotherWorldSizeIsRefusedBeforeAnyWork) {
    temp_dir tmp;
    const auto trace = tmp / "trace";
    auto r = run_wlbtune("run " + data + " --layout cp=2 --trace-dir '" + trace.string() + "'");
    EXPECT_EQ(r.exit_code, 3) << r.err;
    EXPECT_NE(r.err.find("layout tp=1,cp=2,pp=1,dp=1 needs 2 ranks but the job has 1"),
              std::string::npos)
        << r.err;
    EXPECT_FALSE(std::filesystem::exists(trace));
}

TEST(CliRun, TheCudaBackendWithoutADeviceIsARuntimeFailureNamingIt) {
    temp_dir tmp;
    const auto trace = tmp / "trace";
    for (const std::string extra : {"", " --emulate --layout tp=2,cp=2,pp=2"}) {
        auto cuda = run_wlbtune("run " + data + " --backend cuda --trace-dir '" + trace.string() +
                                "'" + extra);
        if (cuda.exit_code == 0)
            GTEST_SKIP() << "a CUDA device is visible here: the cuda backend ran";
        EXPECT_EQ(cuda.exit_code, 4) << cuda.err;
        EXPECT_NE(cuda.err.find("--backend cuda: "), std::string::npos) << cuda.err;
        // A CUDA build names the device it lacks; a build without CUDA says so.
        EXPECT_TRUE(cuda.err.find("no CUDA device") != std::string::npos ||
                    cuda.err.find("without CUDA") != std::string::npos)
            << cuda.err;
        EXPECT_FALSE(std::filesystem::exists(trace)) << "refused before any work";
    }
    auto cpu = run_wlbtune("run " + data + " --emulate");
    EXPECT_EQ(cpu.exit_code, 3);
    EXPECT_NE(cpu.err.find("--emulate"), std::string::npos) << cpu.err;
}

TEST(CliRun, BadBackendsAndTunedConfigsAreClearErrors) {
    auto config = run_wlbtune("run --config missing-tuned.json");
    EXPECT_EQ(config.exit_code, 3);
    EXPECT_NE(config.err.find("missing-tuned.json"), std::string::npos) << config.err;
    auto both = run_wlbtune("run --config missing-tuned.json --packing wlb");
    EXPECT_EQ(both.exit_code, 2) << both.err; // --config excludes the packing options
    auto other = run_wlbtune("run " + data + " --backend tpu");
    EXPECT_EQ(other.exit_code, 3);
    EXPECT_NE(other.err.find("unknown backend \"tpu\""), std::string::npos) << other.err;
    // A bad value is bad input whether the option's check or the library refuses it (--backend).
    auto precision = run_wlbtune("run " + data + " --precision half");
    EXPECT_EQ(precision.exit_code, 3) << precision.err;
    EXPECT_NE(precision.err.find("wlbtune: error: --precision"), std::string::npos)
        << precision.err;
}

TEST(CliRun, AHybridThresholdIsRefusedWithAnotherShardingPolicy) {
    // A threshold only hybrid reads is refused rather than silently dropped, as pack does.
    auto r = run_wlbtune("run " + data + " --sharding per-doc --hybrid-threshold 1k");
    EXPECT_EQ(r.exit_code, 3) << r.err;
    EXPECT_NE(r.err.find("--hybrid-threshold applies to --sharding hybrid only"), std::string::npos)
        << r.err;
    r = run_wlbtune("run " + data + " --sharding hybrid --hybrid-threshold lots");
    EXPECT_EQ(r.exit_code, 3) << r.err;
    EXPECT_NE(r.err.find("--hybrid-threshold \"lots\""), std::string::npos) << r.err;
}

TEST(CliRunMpi, AMismatchedWorldIsRefusedOnEveryRankWithExitCode3) {
    WLB_SKIP_WITHOUT_MPI();
    temp_dir tmp;
    const auto trace = tmp / "trace";
    auto r = run_mpi_wlbtune(2, "run " + data + " --layout cp=2,pp=2 --trace-dir '" +
                                    trace.string() + "'");
    EXPECT_EQ(r.exit_code, 3) << r.err;
    EXPECT_NE(r.err.find("layout tp=1,cp=2,pp=2,dp=1 needs 4 ranks but the job has 2"),
              std::string::npos)
        << r.err;
    EXPECT_FALSE(std::filesystem::exists(trace));
}

TEST(CliRunMpi, FourRanksWriteATraceThatReadsBackAndExportsAndMatchTheSingleProcessLoss) {
    WLB_SKIP_WITHOUT_MPI();
    temp_dir tmp;
    const auto trace = tmp / "trace";
    const auto perfetto = tmp / "run.json.gz";
    const auto json = tmp / "run.json";
    const auto single = tmp / "single.json";
    const std::string common = "run " + data +
                               " --steps 2 --micro-batches 2 --packing wlb --sharding adaptive "
                               "--precision double --seed 5 ";
    auto r = run_mpi_wlbtune(4, common + "--layout cp=2,pp=2 --trace-dir '" + trace.string() +
                                    "' --trace '" + perfetto.string() + "' --json '" +
                                    json.string() + "'");
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    // Only rank 0 prints.
    EXPECT_EQ(r.out.find("wlbtune run:"), r.out.rfind("wlbtune run:")) << r.out;
    EXPECT_NE(r.out.find("launcher openmpi"), std::string::npos) << r.out;

    const auto t = wlb::runtime::trace_reader(trace.string()).read_all();
    EXPECT_EQ(t.meta.source, "cpu");
    EXPECT_EQ(t.meta.steps, 2);
    ASSERT_EQ(t.ranks.size(), 4u);
    for (const auto& rank : t.ranks)
        EXPECT_FALSE(rank.empty());
    // The batches travel with the trace, and analyze sets the lost time against their work.
    EXPECT_EQ(t.meta.batches, "batches.json");
    EXPECT_EQ(t.batches.size(), 2u);
    const auto analysis = tmp / "analysis.json";
    auto an = run_wlbtune("analyze '" + trace.string() + "' --json '" + analysis.string() + "'");
    ASSERT_EQ(an.exit_code, 0) << an.out << an.err;
    EXPECT_NE(an.out.find("Lost time against the batches' predicted work (batches.json"),
              std::string::npos)
        << an.out;
    const auto aj = read_json(analysis);
    EXPECT_TRUE(aj["work_check"]["available"].get<bool>()) << aj["work_check"].dump();
    EXPECT_EQ(aj["work_check"]["cells"].size(), 2u * 2u * 2u) << "steps x micro-batches x cp";
    // The tiny model's 4 layers on 2 stages, each layer 3 GEMMs and one attention per pass.
    EXPECT_EQ(aj["summary"]["partition"], "2,2");

    const auto check = wlb::reports::check_perfetto_file(perfetto.string());
    EXPECT_TRUE(check.ok()) << (check.problems.empty() ? "" : check.problems.front());
    EXPECT_GT(check.flows, 0u);
    EXPECT_EQ(check.processes, 4u);

    auto one = run_wlbtune(common + "--json '" + single.string() + "'");
    ASSERT_EQ(one.exit_code, 0) << one.err;
    const auto a = read_json(json), b = read_json(single);
    ASSERT_EQ(a["steps"].size(), 2u);
    ASSERT_EQ(b["steps"].size(), 2u);
    for (std::size_t s = 0; s < 2; ++s) {
        // Step 1's loss follows an SGD update with the reduced gradients: equal too.
        const double la = a["steps"][s]["loss"].get<double>();
        const double lb = b["steps"][s]["loss"].get<double>();
        EXPECT_NEAR(la, lb, 1e-9 * lb) << "step " << s;
        EXPECT_EQ(a["steps"][s]["tokens"], b["steps"][s]["tokens"]);
    }
    EXPECT_EQ(a["trace"]["events"].get<std::int64_t>(), [&] {
        std::int64_t n = 0;
        for (const auto& rank : t.ranks)
            n += static_cast<std::int64_t>(rank.size());
        return n;
    }());
}

} // namespace

// `run --config` runs exactly the job `wlbtune tune` tuned ([structure]): its model, hardware,
// layout, context, data, packing, sharding and schedule come from the file, whole; only the
// step count is the run's. Another model beside the config is refused, not silently mixed in.
TEST(CliRunMpi, ATunedConfigRunsExactlyTheTunedJob) {
    WLB_SKIP_WITHOUT_MPI();
    temp_dir tmp;
    const auto config = (tmp / "tuned.json").string();
    const auto report = (tmp / "run.json").string();
    auto tuned = run_wlbtune("tune --data 'synthetic:lognormal?mu=4&sigma=1&n=3000&seed=3&max=256' "
                             "--model small --hardware cpu-dev-vm --context 256 "
                             "--layout tp=1,cp=2,pp=1,dp=1 --steps 16 --max-steps 16 --threads 1 "
                             "--time-budget 20s -o '" +
                             config + "'");
    ASSERT_EQ(tuned.exit_code, 0) << tuned.err;
    auto r = run_mpi_wlbtune(2, "run --config '" + config + "' --steps 2 --json '" + report + "'");
    ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
    const auto t = read_json(config);
    const auto j = read_json(report);
    EXPECT_EQ(j["layout"]["spec"], t["layout"]["spec"]);
    EXPECT_EQ(j["layout"]["spec"], "tp=1,cp=2,pp=1,dp=1");
    EXPECT_EQ(j["context_tokens"], t["context_tokens"]);
    EXPECT_EQ(j["packing"], t["packing"]);
    EXPECT_EQ(j["sharding"]["policy"], t["sharding"]["policy"]);
    EXPECT_EQ(j["schedule"].get<std::string>().find("1f1b"), 0u) << j["schedule"];
    // The tuned model, not run's default (tiny): every shape field as the config says.
    for (const char* field : {"name", "hidden", "heads", "ffn", "layers", "vocab"})
        EXPECT_EQ(j["model"][field], t["model"][field]) << field;
    EXPECT_EQ(j["model"]["hidden"], 256);
    EXPECT_EQ(j["hardware"], t["hardware"]["name"]);
    EXPECT_NE(j["data"].get<std::string>().find("lognormal"), std::string::npos) << j["data"];
    EXPECT_EQ(j["steps"].size(), 2u);
    bool config_named = false;
    for (const auto& input : j["inputs"])
        config_named = config_named || input["path"] == config;
    EXPECT_TRUE(config_named) << j["inputs"].dump();

    // Applied whole or refused: a model beside the config is a usage error naming both.
    const auto mixed = run_wlbtune("run --config '" + config + "' --model tiny --steps 1");
    EXPECT_EQ(mixed.exit_code, 2) << mixed.err;
    EXPECT_NE(mixed.err.find("--model"), std::string::npos) << mixed.err;
    EXPECT_NE(mixed.err.find("--config"), std::string::npos) << mixed.err;
}
