// End-to-end: `wlbtune calibrate` writes a hardware file (wlbtune.hardware/1, with provenance)
// that simulate and tune take with --hardware; a bad or partial hardware file is refused naming
// the field; --from-trace fits a `wlbtune run` capture and refuses what is not one. Timings are
// not asserted (the quick probe on a tiny model only checks the path).
#include "support/cli_runner.hpp"

#include <fmt/format.h>
#include <fstream>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using wlb::test::read_text;
using wlb::test::run_wlbtune;
using wlb::test::temp_dir;

namespace {

TEST(CliCalibrate, WritesAHardwareFileThatSimulateAndTuneTake) {
    temp_dir dir;
    const auto hw = (dir / "hw.json").string();
    const auto r = run_wlbtune(fmt::format("calibrate --quick --repeats 1 --model tiny -o '{}' "
                                           "--json '{}'",
                                           hw, (dir / "report.json").string()));
    ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
    EXPECT_NE(r.out.find("calibrated hardware against the preset"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("fit residuals"), std::string::npos) << r.out;
    const auto j = nlohmann::json::parse(read_text(hw));
    EXPECT_EQ(j.at("schema"), "wlbtune.hardware/1");
    for (const char* key : {"machine", "date", "command", "source", "model"})
        EXPECT_TRUE(j.at("provenance").contains(key)) << key;
    EXPECT_TRUE(j.contains("attention_bwd"));
    const auto report = nlohmann::json::parse(read_text(dir / "report.json"));
    EXPECT_EQ(report.at("schema"), "wlbtune.calibrate/1");
    EXPECT_FALSE(report.at("samples").at("samples").empty());

    const auto sim = run_wlbtune(fmt::format("simulate --hardware '{}' --model tiny --layout cp=2 "
                                             "--context 4k --steps 2",
                                             hw));
    EXPECT_EQ(sim.exit_code, 0) << sim.err;
    const auto tune = run_wlbtune(fmt::format(
        "tune --hardware '{}' --model tiny --layout cp=2 --context 4k --max-steps 32 "
        "--time-budget 20s --threads 1 --data 'synthetic:lognormal?mu=6&sigma=1&n=3000&seed=2'",
        hw));
    EXPECT_EQ(tune.exit_code, 0) << tune.err;
}

TEST(CliCalibrate, BadOrPartialHardwareFilesAreRefusedNamingTheField) {
    temp_dir dir;
    auto j = nlohmann::json::parse(R"({"name": "x", "peak_bf16_tflops": 1, "gemm_tflops": 1,
        "attention_fwd": [{"query_tokens": 64, "tflops": 1}], "attention_bwd_rate_ratio": 1,
        "attention_tile": 1, "hbm_gbytes_per_s": 1, "nvlink_gbytes_per_s": 1,
        "nvlink_latency_us": 1, "network_gbytes_per_s": 1, "network_latency_us": 1,
        "gpus_per_node": 8, "memory_gbytes": 16})");
    auto write = [&](const nlohmann::json& x) {
        const auto p = (dir / "hw.json").string();
        std::ofstream(p) << x.dump();
        return run_wlbtune(fmt::format("simulate --hardware '{}' --steps 1", p));
    };
    EXPECT_EQ(write(j).exit_code, 0);
    auto partial = j;
    partial.erase("hbm_gbytes_per_s");
    auto r = write(partial);
    EXPECT_EQ(r.exit_code, 3);
    EXPECT_NE(r.err.find("\"hbm_gbytes_per_s\" is missing"), std::string::npos) << r.err;
    auto typo = j;
    typo["gemm_tflop"] = 2;
    r = write(typo);
    EXPECT_EQ(r.exit_code, 3);
    EXPECT_NE(r.err.find("\"gemm_tflop\""), std::string::npos) << r.err;
    const auto p = (dir / "cut.json").string();
    std::ofstream(p) << j.dump().substr(0, 40);
    r = run_wlbtune(fmt::format("tune --hardware '{}'", p));
    EXPECT_EQ(r.exit_code, 3);
    EXPECT_NE(r.err.find("cut.json"), std::string::npos) << r.err;
}

TEST(CliCalibrate, FromTraceFitsARunCapture) {
    temp_dir dir;
    const auto trace = (dir / "trace").string();
    const auto run = run_wlbtune(fmt::format("run --model tiny --steps 3 --trace-dir '{}' "
                                             "--data 'synthetic:lognormal?mu=5&sigma=1&n=2000'",
                                             trace));
    ASSERT_EQ(run.exit_code, 0) << run.err;
    const auto hw = (dir / "fit.json").string();
    const auto r = run_wlbtune(fmt::format("calibrate --from-trace '{}' -o '{}'", trace, hw));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("fit residuals"), std::string::npos) << r.out;
    const auto j = nlohmann::json::parse(read_text(hw));
    EXPECT_NE(j.at("provenance").at("source").get<std::string>().find("trace"), std::string::npos);
    const auto sim = run_wlbtune(fmt::format(
        "simulate --hardware '{}' --model tiny --layout tp=1 --context 4k --steps 1", hw));
    EXPECT_EQ(sim.exit_code, 0) << sim.err << "\n" << read_text(hw);

    const auto missing =
        run_wlbtune(fmt::format("calibrate --from-trace '{}'", (dir / "nonexistent").string()));
    EXPECT_EQ(missing.exit_code, 3) << missing.err;
}

TEST(CliCalibrate, CudaWithoutADeviceSaysWhy) {
    const auto r = run_wlbtune("calibrate --backend cuda --quick");
    // A CUDA build on a machine without a GPU, or a CPU-only build: a runtime failure naming why.
    if (r.exit_code == 0)
        GTEST_SKIP() << "a GPU is present: the GPU path is checked by the [gpu-check] bundle";
    EXPECT_EQ(r.exit_code, 4) << r.err;
    EXPECT_NE(r.err.find("cuda"), std::string::npos) << r.err;
}

} // namespace
