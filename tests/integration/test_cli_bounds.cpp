// Issue [hardening]: counts an option or a file can make wlbtune allocate are bounded before the
// allocation, and values that are meaningless are refused, each with exit 3 (bad input) and a
// message naming the option or the file and JSON path; never exit 1 (a bug), a hang or success.
#include "support/cli_runner.hpp"

#include <fmt/format.h>
#include <fstream>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using wlb::test::run_wlbtune;
using wlb::test::temp_dir;

namespace {

const std::string small_data = "'synthetic:wlbllm?n=400&seed=3'";

void expect_bad_input(const wlb::test::cli_result& r, const std::string& says) {
    EXPECT_EQ(r.exit_code, 3) << r.err;
    EXPECT_NE(r.err.find(says), std::string::npos) << r.err;
}

TEST(CliBounds, PackingCountsAreBoundedBeforeAllocation) {
    temp_dir dir;
    const auto out = " -o '" + (dir / "p.jsonl").string() + "'";
    expect_bad_input(run_wlbtune("pack --data " + small_data +
                                 " --context 8k --steps 1 --policy fixed-greedy "
                                 "--window 1000000000" +
                                 out),
                     "--window 1000000000");
    expect_bad_input(run_wlbtune("pack --data " + small_data +
                                 " --context 8k --steps 1 --micro-batches 1000000000" + out),
                     "--micro-batches must be at most");
    expect_bad_input(run_wlbtune("pack --data " + small_data +
                                 " --context 8k --steps 1 --queues 1000000000" + out),
                     "--queues must be at most");
    // The simulator's micro-batches come through the same packing configuration.
    expect_bad_input(run_wlbtune("simulate --micro-batches 1000000"), "--micro-batches");
}

// A layout the model's heads do not split over is refused by simulate as run refuses it.
TEST(CliBounds, SimulateRefusesATpThatSplitsHeads) {
    expect_bad_input(run_wlbtune("simulate --model 7b --layout tp=7"), "not divisible by tp=7");
}

TEST(CliBounds, RunChecksTheModelAgainstHostMemory) {
    temp_dir dir;
    const auto model = (dir / "huge.json").string();
    std::ofstream(model) << R"({"layers": 1000000, "hidden": 1000000, "heads": 1000, )"
                            R"("ffn": 4000000, "vocab": 32000})";
    expect_bad_input(run_wlbtune("run --model '" + model + "' --steps 1"), "host memory");
}

TEST(CliBounds, ModelFieldsOutOfRangeAreNamed) {
    temp_dir dir;
    const auto model = (dir / "m.json").string();
    std::ofstream(model) << R"({"layers": 2, "hidden": 1e12, "heads": 8, "ffn": 64, "vocab": 64})";
    auto r = run_wlbtune("simulate --model '" + model + "'");
    expect_bad_input(r, "\"hidden\"");
    EXPECT_EQ(r.err.find("-2147483648"), std::string::npos) << r.err;
    std::ofstream(model) << R"({"layers": 2, "hidden": 1000000000000, "heads": 8, "ffn": 64, )"
                            R"("vocab": 64})";
    r = run_wlbtune("simulate --model '" + model + "'");
    expect_bad_input(r, "1000000000000");
}

// A tuned config whose fields a hand edit broke: refused naming the file and the JSON path.
class CliBoundsConfig : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        s_dir = new temp_dir;
        const auto path = (*s_dir / "tuned.json").string();
        const auto r =
            run_wlbtune("tune --data " + small_data +
                        " --context 8k --layout tp=8,cp=1,pp=2,dp=1 --steps 2 -o '" + path + "'");
        ASSERT_EQ(r.exit_code, 0) << r.err;
        s_config = nlohmann::json::parse(wlb::test::read_text(path));
    }
    static void TearDownTestSuite() { delete s_dir; }
    /// Writes the tuned config with `edit` applied and returns its path.
    template <typename Edit>
    std::string edited(const std::string& name, Edit edit) {
        auto j = s_config;
        edit(j);
        const auto path = (*s_dir / name).string();
        std::ofstream(path) << j.dump();
        return path;
    }
    static inline temp_dir* s_dir = nullptr;
    static inline nlohmann::json s_config;
};

TEST_F(CliBoundsConfig, NegativeEvaluatedStepsAreRefused) {
    const auto p = edited("steps.json", [](auto& j) { j["evaluated"]["steps"] = -3; });
    expect_bad_input(run_wlbtune("simulate --config '" + p + "'"), "$.evaluated.steps");
    temp_dir out;
    expect_bad_input(
        run_wlbtune("pack --config '" + p + "' -o '" + (out / "p.jsonl").string() + "'"),
        "$.evaluated.steps");
}

TEST_F(CliBoundsConfig, ReplicasMustBeTheLayoutsDp) {
    const auto p = edited("replicas.json", [](auto& j) { j["packing"]["replicas"] = 7; });
    temp_dir out;
    auto r =
        run_wlbtune("pack --config '" + p + "' --steps 2 -o '" + (out / "p.jsonl").string() + "'");
    expect_bad_input(r, "$.packing.replicas");
    EXPECT_NE(r.err.find(p), std::string::npos) << r.err;
}

TEST_F(CliBoundsConfig, HugeCountsInTheConfigAreBounded) {
    temp_dir out;
    const auto o = " --steps 1 -o '" + (out / "p.jsonl").string() + "'";
    auto p = edited("mb.json", [](auto& j) { j["packing"]["micro_batches"] = 1000000000; });
    expect_bad_input(run_wlbtune("pack --config '" + p + "'" + o), "packing.micro_batches");
    p = edited("mb40.json", [](auto& j) { j["packing"]["micro_batches"] = 1LL << 40; });
    expect_bad_input(run_wlbtune("pack --config '" + p + "'" + o), "packing.micro_batches");
    p = edited("window.json", [](auto& j) {
        j["packing"] = {{"policy", "fixed-greedy"},
                        {"context_tokens", j["context_tokens"]},
                        {"replicas", 1},
                        {"micro_batches", 2},
                        {"window", 1000000000}};
    });
    expect_bad_input(run_wlbtune("pack --config '" + p + "'" + o), "packing.window");
}

TEST_F(CliBoundsConfig, TpThatSplitsHeadsNamesTheConfig) {
    const auto p = edited("tp7.json", [](auto& j) { j["layout"]["spec"] = "tp=7,cp=1,pp=2,dp=1"; });
    auto r = run_wlbtune("simulate --config '" + p + "'");
    expect_bad_input(r, "$.layout");
    EXPECT_NE(r.err.find(p), std::string::npos) << r.err;
}

} // namespace
