// End-to-end: wlbtune pack writes a plan that reads back consistent with its JSON summary, the
// compare table has a row per policy, and bad options exit with bad input naming the option.
#include "base/error.hpp"
#include "support/cli_runner.hpp"
#include "tuner/plan/plan_io.hpp"

#include <gtest/gtest.h>
#include <map>
#include <nlohmann/json.hpp>

using wlb::test::run_wlbtune;
using wlb::test::temp_dir;

namespace {

const std::string data = "'synthetic:wlbllm?n=4000&seed=5'";

TEST(CliPack, PlanReadsBackAndMatchesTheSummary) {
    temp_dir dir;
    for (const char* policy : {"plain", "fixed-greedy", "varlen", "wlb", "ffd"}) {
        SCOPED_TRACE(policy);
        const auto plan = (dir / "plan.jsonl.gz").string();
        const auto json = (dir / "summary.json").string();
        auto r =
            run_wlbtune(fmt::format("pack --data {} --context 32k --layout tp=2,cp=1,pp=4,dp=2 "
                                    "--policy {} --window 2 --steps 12 -o '{}' --json '{}'",
                                    data, policy, plan, json));
        ASSERT_EQ(r.exit_code, 0) << r.err;
        EXPECT_NE(r.out.find("predicted"), std::string::npos) << r.out;
        const auto p = wlb::tuner::read_plan(plan);
        ASSERT_EQ(p.steps.size(), 12u);
        EXPECT_EQ(std::string(to_string(p.header.packing.policy)), policy);
        EXPECT_EQ(p.header.packing.replicas, 2);
        EXPECT_EQ(p.header.packing.micro_batches, 4); // the layout's pp
        EXPECT_EQ(p.header.model.name, "7b");

        const auto s = nlohmann::json::parse(wlb::test::read_text(json));
        EXPECT_EQ(s.at("schema"), "wlbtune.pack/1");
        const auto& summary = s.at("results").at(0).at("summary");
        std::int64_t tokens = 0;
        std::int64_t delay = 0;
        std::map<std::int64_t, std::int64_t> seen;
        for (const auto& b : p.steps)
            for (const auto& rep : b.replicas)
                for (const auto& mb : rep.micro_batches)
                    for (const auto& d : mb.docs) {
                        tokens += d.tokens;
                        delay += (b.step - d.drawn_step) * d.tokens;
                        seen[d.id] += d.tokens;
                    }
        for (const auto& d : p.waiting)
            seen[d.id] += d.tokens;
        EXPECT_EQ(summary.at("tokens").get<std::int64_t>(), tokens);
        EXPECT_EQ(summary.at("delay_token_iterations").get<std::int64_t>(), delay);
        EXPECT_EQ(summary.at("steps"), 12);
        EXPECT_EQ(summary.at("waiting_documents").at("at_end").get<std::size_t>(),
                  p.waiting.size());
        // Ids are stream positions: every drawn document (0 .. max) is in the plan, once.
        ASSERT_FALSE(seen.empty());
        EXPECT_EQ(seen.rbegin()->first + 1, static_cast<std::int64_t>(seen.size()));
    }
}

TEST(CliPack, CompareRunsEveryPolicyOnTheSameDocuments) {
    temp_dir dir;
    const auto json = (dir / "summary.json").string();
    auto r = run_wlbtune(fmt::format("pack --data {} --context 32k --steps 10 --compare "
                                     "plain,fixed-greedy,varlen,wlb,ffd --json '{}'",
                                     data, json));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    for (const char* row : {"wlb 2q", "plain", "fixed-greedy W=1", "varlen", "ffd"})
        EXPECT_NE(r.out.find(row), std::string::npos) << row << "\n" << r.out;
    const auto s = nlohmann::json::parse(wlb::test::read_text(json));
    ASSERT_EQ(s.at("results").size(), 5u);
    for (const auto& row : s.at("results"))
        EXPECT_EQ(row.at("summary").at("steps"), 10);
    // plain never delays a token
    EXPECT_EQ(s.at("results").at(1).at("summary").at("delay_token_iterations"), 0);
}

TEST(CliPack, SameCommandWritesTheSamePlan) {
    temp_dir dir;
    const auto a = (dir / "a.jsonl").string();
    const auto b = (dir / "b.jsonl").string();
    for (const auto& path : {a, b}) {
        auto r = run_wlbtune(
            fmt::format("pack --data {} --context 32k --shuffle 9 --steps 8 -o '{}'", data, path));
        ASSERT_EQ(r.exit_code, 0) << r.err;
    }
    auto body = [](const std::string& text) {
        return text.substr(text.find('\n'));
    };
    EXPECT_EQ(body(wlb::test::read_text(a)), body(wlb::test::read_text(b)));
}

TEST(CliPack, BadOptionsExitWithBadInputAndNameTheOption) {
    temp_dir dir;
    const auto plan = (dir / "p.jsonl").string();
    const std::pair<std::string, std::string> cases[] = {
        {"pack --policy zigzag", "unknown packing policy \"zigzag\""},
        {"pack --smax 0.5x", "--smax \"0.5x\""},
        {"pack --context 32k --smax 16k", "--smax 16384 is below the context 32768"},
        {"pack --thresholds 64k,24k", "thresholds must increase"},
        {"pack --thresholds 64k,abc", "--thresholds item 2 \"abc\""},
        {"pack --context 32k --thresholds 64k", "threshold 65536 is above the context 32768"},
        {"pack --queues -1", "--queues must be >= 0, found -1"},
        {"pack --window 0", "--window must be >= 1, found 0"},
        {"pack --micro-batches -2", "--micro-batches must be >= 0 (0: the layout's pp), found -2"},
        {"pack --data json:/nonexistent/lengths.json", "/nonexistent/lengths.json"},
        {"pack --layout tp=0", "tp=0"},
        {"pack --compare plain,zigzag --steps 1", "unknown packing policy \"zigzag\""},
    };
    for (const auto& [args, message] : cases) {
        SCOPED_TRACE(args);
        auto r = run_wlbtune(args + " -o '" + plan + "'");
        EXPECT_EQ(r.exit_code, 3) << r.err;
        EXPECT_NE(r.err.find(message), std::string::npos) << r.err;
    }
    EXPECT_FALSE(std::filesystem::exists(plan)); // no half-written plan
}

} // namespace
