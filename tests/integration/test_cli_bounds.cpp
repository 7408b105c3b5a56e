// Issue [hardening]: counts an option or a file can make wlbtune allocate are bounded before the
// allocation, and values that are meaningless are refused, each with exit 3 (bad input) and a
// message naming the option or the file and JSON path; never exit 1 (a bug), a hang or success.
#include "support/cli_runner.hpp"

#include <fmt/format.h>
#include <fstream>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sstream>

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

// A Megatron-style timer timeline of one rank named `process` with `step` and `ts` in its events.
std::string timeline(const std::string& process, const std::string& step = "0",
                     const std::string& ts = "100") {
    return fmt::format(
        "{{\"traceEvents\":[\n"
        "{{\"ph\":\"M\",\"pid\":10,\"name\":\"process_name\",\"args\":{{\"name\":\"{}\"}}}},\n"
        "{{\"ph\":\"X\",\"pid\":10,\"tid\":1,\"name\":\"forward-compute\",\"ts\":0,\"dur\":100,"
        "\"args\":{{\"step\":{},\"micro_batch\":0}}}},\n"
        "{{\"ph\":\"X\",\"pid\":10,\"tid\":1,\"name\":\"backward-compute\",\"ts\":{},\"dur\":200,"
        "\"args\":{{\"step\":{},\"micro_batch\":0}}}}\n]}}\n",
        process, step, ts, step);
}

std::string kineto(const std::string& rank, const std::string& world) {
    return fmt::format("{{\"distributedInfo\": {{\"rank\": {}, \"world_size\": {}}}, "
                       "\"traceEvents\": [\n{{\"ph\": \"X\", \"cat\": \"kernel\", \"name\": "
                       "\"ampere_sgemm\", \"pid\": 0, \"tid\": 7, \"ts\": 10, \"dur\": 5, "
                       "\"args\": {{\"stream\": 7, \"correlation\": 1}}}}\n]}}\n",
                       rank, world);
}

wlb::test::cli_result analyze_text(const temp_dir& dir, const std::string& name,
                                   const std::string& text, const std::string& extra = "") {
    const auto p = (dir / name).string();
    std::ofstream(p) << text;
    return run_wlbtune("analyze '" + p + "'" + extra);
}

// Rank numbers a file makes up cannot size the job's rank table: refused naming the file
// (a 200-byte timeline naming rank 1000000 took 334 MB; 2^31-1 and 99999999999 exited 1).
TEST(CliBoundsTrace, HugeRankNumbersAreRefusedNamingTheFile) {
    temp_dir dir;
    for (const char* rank : {"1000000", "2147483647", "99999999999"}) {
        SCOPED_TRACE(rank);
        auto r = analyze_text(dir, "timeline.json", timeline(std::string("rank ") + rank));
        expect_bad_input(r, "timeline.json");
        EXPECT_NE(r.err.find("wlbtune reads"), std::string::npos) << r.err;
    }
    auto r = analyze_text(dir, "rank0.pt.trace.json", kineto("1099511627776", "8"));
    expect_bad_input(r, "distributedInfo.rank");
    EXPECT_NE(r.err.find("rank0.pt.trace.json"), std::string::npos) << r.err;
    for (const char* world : {"0", "1099511627776"}) {
        SCOPED_TRACE(world);
        r = analyze_text(dir, "rank0.pt.trace.json", kineto("0", world));
        expect_bad_input(r, "distributedInfo.world_size");
    }
}

TEST(CliBoundsTrace, StepsAndTimesOutOfRangeAreRefusedWithFileLineAndField) {
    temp_dir dir;
    for (const char* step : {"-7", "4e9", "4000000000"}) {
        SCOPED_TRACE(step);
        expect_bad_input(analyze_text(dir, "t.json", timeline("rank 0", step)),
                         "t.json:3: \"args.step\"");
    }
    expect_bad_input(analyze_text(dir, "t.json", timeline("rank 0", "0", "9223372036854775807")),
                     "t.json:4: \"ts\"");
}

TEST(CliBoundsTrace, ManifestWithoutRanksAndALayoutTooSmallAreRefused) {
    temp_dir dir;
    const auto traces = (dir / "job").string();
    ASSERT_EQ(run_wlbtune("simulate --layout tp=2,dp=32 --steps 1 --trace-dir '" + traces + "'")
                  .exit_code,
              0);
    // 64 ranks read with a 2-rank layout: an error naming both, not 62 ranks dropped.
    auto r = run_wlbtune("analyze '" + traces + "' --layout tp=2");
    expect_bad_input(r, "outside layout tp=2");
    EXPECT_NE(r.err.find("64 ranks"), std::string::npos) << r.err;
    const auto manifest = traces + "/manifest.json";
    auto j = nlohmann::json::parse(wlb::test::read_text(manifest));
    j["ranks"] = nlohmann::json::array();
    std::ofstream(manifest) << j.dump();
    r = run_wlbtune("analyze '" + traces + "'");
    expect_bad_input(r, "$.ranks");
    EXPECT_NE(r.err.find("manifest.json"), std::string::npos) << r.err;
    j["layout"]["spec"] = "tp=3,cp=x";
    std::ofstream(manifest) << j.dump();
    expect_bad_input(run_wlbtune("analyze '" + traces + "'"), "manifest.json: $.layout");
}

// Help examples with '?' or '&' in a value are quoted, so a copied example runs as shown.
TEST(CliBounds, HelpExamplesQuoteShellCharacters) {
    for (const char* command : {"layout", "data", "pack", "simulate", "shard", "run", "tune",
                                "analyze", "calibrate", "profile", "trigger"}) {
        SCOPED_TRACE(command);
        const auto r = run_wlbtune(std::string(command) + " --help");
        ASSERT_EQ(r.exit_code, 0) << r.err;
        const auto examples = r.out.find("Example");
        if (examples == std::string::npos)
            continue;
        std::istringstream lines(r.out.substr(examples));
        for (std::string line; std::getline(lines, line);) {
            if (line.find("wlbtune ") == std::string::npos)
                continue;
            bool quoted = false;
            for (std::size_t i = 0; i < line.size(); ++i) {
                const char c = line[i];
                if (c == '\'')
                    quoted = !quoted;
                else if (c == '#' && !quoted)
                    break; // a comment
                else if (!quoted && c == '?')
                    ADD_FAILURE() << "unquoted '?': " << line;
                else if (!quoted && c == '&' && line[i + 1] != '&' &&
                         (i == 0 || line[i - 1] != '&'))
                    ADD_FAILURE() << "unquoted '&': " << line;
            }
        }
    }
}

} // namespace
