// Regression tests for what the fuzz targets (tests/fuzz, docs/fuzzing.md) found: each input, or
// the smallest one showing the same fault, with the property the fix restores.
#include "base/error.hpp"
#include "base/json_file.hpp"
#include "profiler/ingest/chrome_json.hpp"
#include "profiler/ingest/ingest.hpp"
#include "profiler/ingest/rank_names.hpp"
#include "runtime/trace/trace.hpp"
#include "support/cli_runner.hpp"
#include "tuner/data/text_sources.hpp"
#include "tuner/plan/plan_io.hpp"

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <string>

namespace {

using wlb::test::temp_dir;

// Open descriptors of this process (each /proc/self/fd entry, the directory's own included).
int open_descriptors() {
    int n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd"))
        ++n;
    return n;
}

// fuzz_plan_config: a plan whose header line is refused leaked the gzFile opened for it (the
// constructor threw, so the destructor that closes it never ran): its descriptor and zlib's
// buffers, once for every bad plan read.
TEST(FuzzFindings, RefusedPlanHeaderClosesTheFile) {
    temp_dir dir;
    const auto path = (dir / "bad.jsonl").string();
    std::ofstream(path) << R"({"schema": "wlbtune.plan/1", "layout": 7})"
                        << "\n";
    const int before = open_descriptors();
    for (int i = 0; i < 20; ++i)
        EXPECT_THROW(wlb::tuner::plan_reader reader(path), wlb::input_error);
    EXPECT_EQ(open_descriptors(), before);
}

// fuzz_traces: a Chrome-trace time of INT64_MAX microseconds overflowed `us * 1000` (undefined
// behaviour; in practice a wrapped, negative time). A time beyond int64 nanoseconds is refused.
TEST(FuzzFindings, MicrosecondsBeyondInt64NanosecondsAreRefused) {
    std::int64_t ns = 0;
    EXPECT_FALSE(wlb::profiler::chrome::micros_to_ns("9223372036854775807", ns));
    EXPECT_FALSE(wlb::profiler::chrome::micros_to_ns("-9223372036854775807.5", ns));
    EXPECT_FALSE(wlb::profiler::chrome::micros_to_ns("1e300", ns));
    // The largest count that fits still reads, exactly.
    ASSERT_TRUE(wlb::profiler::chrome::micros_to_ns("9223372036854774.807", ns));
    EXPECT_EQ(ns, 9223372036854774807);
    ASSERT_TRUE(wlb::profiler::chrome::micros_to_ns("-12.5", ns));
    EXPECT_EQ(ns, -12500);
}

// fuzz_data_sources: a JSON number beyond a double ("-1e3081") makes nlohmann throw
// out_of_range, not parse_error; it escaped as an internal error (exit 1) instead of naming the
// file and line.
TEST(FuzzFindings, JsonNumberBeyondADoubleIsBadInputNamingThePlace) {
    temp_dir dir;
    const auto path = (dir / "lengths.jsonl").string();
    std::ofstream(path) << "{\"length\": 10}\n{\"length\": -1e3081}\n";
    try {
        (void)wlb::tuner::open_jsonl_lengths(path);
        FAIL() << "no error";
    } catch (const wlb::input_error& e) {
        EXPECT_NE(std::string(e.what()).find(path + ":2:"), std::string::npos) << e.what();
    }
    try {
        (void)wlb::parse_json("[1, 1e999]", "config.json");
        FAIL() << "no error";
    } catch (const wlb::input_error& e) {
        EXPECT_NE(std::string(e.what()).find("config.json: not valid JSON"), std::string::npos)
            << e.what();
    }
}

// fuzz_plan_config: a plan whose header holds a number beyond a double ("80.1e308") escaped as
// nlohmann's out_of_range (exit 1). The same parse of a plan's step lines and of a wlbtune trace's
// rank lines had the same gap.
TEST(FuzzFindings, NumberBeyondADoubleInAPlanOrTraceLineIsBadInput) {
    temp_dir dir;
    const auto plan = (dir / "plan.jsonl").string();
    std::ofstream(plan) << R"({"schema": "wlbtune.plan/1", "context_tokens": 80.1e308})"
                        << "\n";
    try {
        (void)wlb::tuner::read_plan(plan);
        FAIL() << "no error";
    } catch (const wlb::input_error& e) {
        EXPECT_NE(std::string(e.what()).find(plan + ":1"), std::string::npos) << e.what();
    }

    namespace rt = wlb::runtime;
    rt::trace t;
    t.meta.source = "test";
    t.meta.job_layout = rt::layout::parse("tp=1");
    t.meta.steps = 1;
    t.ranks.resize(1);
    const auto trace_dir = (dir / "trace").string();
    rt::write_trace_dir(trace_dir, t);
    const auto rank_file = (dir / "trace" / "rank_00000.jsonl").string();
    std::ofstream(rank_file) << R"({"rank": 0, "start_ns": 1e999})"
                             << "\n";
    try {
        (void)rt::trace_reader(trace_dir).read_all();
        FAIL() << "no error";
    } catch (const wlb::input_error& e) {
        EXPECT_NE(std::string(e.what()).find(rank_file + ":1"), std::string::npos) << e.what();
    }
}

// fuzz_traces: a timer timeline whose process is named "rank 99999999999" ended in
// std::stoi's out_of_range (exit 1, "internal error: stoi"). A rank or coordinate in a name
// beyond the largest world is bad input naming the file and the name.
TEST(FuzzFindings, RankInANameBeyondTheLargestWorldIsBadInput) {
    EXPECT_THROW((void)wlb::profiler::coords_in_name("rank 99999999999"), wlb::input_error);
    EXPECT_THROW((void)wlb::profiler::coords_in_name("tp rank 4294967297"), wlb::input_error);
    EXPECT_THROW((void)wlb::profiler::coords_in_name("pp_2147483648"), wlb::input_error);
    EXPECT_EQ(wlb::profiler::coords_in_name("rank 12").rank, 12);

    temp_dir dir;
    const auto path = (dir / "timers.json").string();
    std::ofstream(path)
        << R"({"traceEvents": [{"ph": "M", "name": "process_name", "pid": 0, "args": )"
        << R"({"name": "rank 99999999999"}}, {"ph": "X", "name": "forward-compute", "pid": 0, )"
        << R"("tid": 0, "ts": 0, "dur": 100, "args": {"step": 0}}]})";
    wlb::profiler::ingest_options options;
    options.format = wlb::profiler::trace_format::megatron;
    options.threads = 1;
    try {
        (void)wlb::profiler::ingest({path}, options);
        FAIL() << "no error";
    } catch (const wlb::input_error& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find(path), std::string::npos) << what;
        EXPECT_NE(what.find("99999999999"), std::string::npos) << what;
    }
}

// fuzz_specs: a --rank-map pattern with a long digit run ("a{99999999999999999999}") made
// libstdc++'s regex compiler overflow a long (UBSan aborts the sanitizer build; elsewhere the count
// wraps). Refused as a usage error naming the rule.
TEST(FuzzFindings, RankMapPatternWithAnOverlongNumberIsRefused) {
    EXPECT_THROW((void)wlb::profiler::rank_map::parse("process: a{99999999999999999999} -> rank=1"),
                 wlb::usage_error);
    EXPECT_THROW(
        (void)wlb::profiler::rank_map::parse("process: (a)\\99999999999999999999 -> rank=1"),
        wlb::usage_error);
    EXPECT_NO_THROW((void)wlb::profiler::rank_map::parse("process: worker(\\d+) -> rank=$1"));
}

// fuzz_specs (10-minute run): nested bounded repetitions ("{4,7}" then "{9223372}") made
// libstdc++'s regex compiler build millions of states (a 10 s timeout). Their product is bounded.
TEST(FuzzFindings, RankMapPatternThatRepeatsTooMuchIsRefused) {
    EXPECT_THROW((void)wlb::profiler::rank_map::parse("process: ((a{4,7}){9223372}) -> rank=1"),
                 wlb::usage_error);
    EXPECT_THROW((void)wlb::profiler::rank_map::parse("process: ((a{50}){50}) -> rank=1"),
                 wlb::usage_error);
    EXPECT_NO_THROW(
        (void)wlb::profiler::rank_map::parse("process: rank_(\\d{1,6})_x{2} -> rank=$1"));
    EXPECT_NO_THROW((void)wlb::profiler::rank_map::parse("process: a\\{99999} -> rank=1"));
}

} // namespace
