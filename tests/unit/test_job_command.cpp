// The command that wrote a trace, read back so that analyze prints changes that run as printed:
// the same job with one option changed (a run translated to simulate), tune on its documents;
// output options left out; shell quoting.
#include "reports/job_command.hpp"

#include <gtest/gtest.h>

namespace wlb::reports {
namespace {

TEST(JobCommand, SimulateWithOneOptionChangedAndOutputsLeftOut) {
    const auto c = job_command::parse(
        {"wlbtune", "simulate", "--data", "synthetic:wlbllm?n=4000&seed=5", "--context", "32k",
         "--layout", "tp=2,cp=2,pp=2,dp=1", "--sharding", "per-seq", "--steps", "2", "--trace-dir",
         "t", "--json=out.json", "--compare"});
    ASSERT_FALSE(c.empty());
    EXPECT_EQ(c.sharding(), "per-seq");
    EXPECT_EQ(c.packing(), "wlb") << "simulate's default";
    EXPECT_EQ(c.simulate_with("--sharding", "adaptive"),
              "wlbtune simulate --data 'synthetic:wlbllm?n=4000&seed=5' --context 32k --layout "
              "tp=2,cp=2,pp=2,dp=1 --sharding adaptive --steps 2 --compare");
    EXPECT_EQ(c.simulate_with("--partition", "9,7"),
              "wlbtune simulate --data 'synthetic:wlbllm?n=4000&seed=5' --context 32k --layout "
              "tp=2,cp=2,pp=2,dp=1 --sharding per-seq --steps 2 --compare --partition 9,7");
    EXPECT_EQ(c.tune(), "wlbtune tune --data 'synthetic:wlbllm?n=4000&seed=5' --context 32k "
                        "--layout tp=2,cp=2,pp=2,dp=1");
}

TEST(JobCommand, RunIsTranslatedToSimulateAndFixedBatchesTellNoPolicy) {
    const auto run =
        job_command::parse({"wlbtune", "run", "-l",          "cp=2",   "-m",          "small", "-p",
                            "plain",   "-s",  "per-doc",     "--data", "d.json",      "-n",    "6",
                            "--seed",  "3",   "--trace-dir", "T",      "--precision", "double"});
    EXPECT_EQ(run.packing(), "plain");
    EXPECT_EQ(run.sharding(), "per-doc");
    EXPECT_EQ(run.simulate_with("--packing", "wlb"),
              "wlbtune simulate --layout cp=2 --model small --packing wlb --sharding per-doc "
              "--data d.json --steps 6");
    const auto batch = job_command::parse(
        {"wlbtune", "simulate", "--batch", "b.json", "--model", "550m", "--trace-dir", "t"});
    EXPECT_FALSE(batch.packing().has_value());
    EXPECT_FALSE(batch.sharding().has_value());
    EXPECT_EQ(batch.tune(), "") << "no documents to tune on";
    EXPECT_EQ(batch.simulate_with("--partition", "3,5"),
              "wlbtune simulate --batch b.json --model 550m --partition 3,5");
    const auto config = job_command::parse({"wlbtune", "simulate", "--config", "tuned.json"});
    EXPECT_EQ(config.simulate_with("--partition", "3,5"), "")
        << "simulate --config takes no --partition";
    EXPECT_TRUE(job_command::parse({}).empty());
    EXPECT_TRUE(job_command::parse({"wlbtune", "analyze", "x"}).empty());
}

TEST(JobCommand, ShellQuoting) {
    EXPECT_EQ(shell_quote("tp=2,cp=2"), "tp=2,cp=2");
    EXPECT_EQ(shell_quote("a b"), "'a b'");
    EXPECT_EQ(shell_quote("it's"), "'it'\\''s'");
    EXPECT_EQ(shell_quote(""), "''");
}

} // namespace
} // namespace wlb::reports
