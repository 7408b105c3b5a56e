// A `wlbtune profile` capture directory, made of process reports and trace files the tests write
// (tests/support/fake_job_capture.hpp), becomes a trace analyze reads: one file per rank (a rank
// claimed twice keeps the process with more events), another run's reports left out, the layout
// from the job's Megatron-LM or TorchTitan flags; analyze tells attention from GEMMs by kernel
// name, matches the NCCL kernels across ranks, finds the straggler, and says what it cannot
// attribute when the job has no NVTX ranges for micro-batches and passes.
#include "profiler/analysis/analysis.hpp"
#include "profiler/capture/inject/private_files.hpp"
#include "profiler/capture/launch/capture_manifest.hpp"
#include "profiler/capture/launch/job_layout.hpp"
#include "profiler/capture/launch/profile_job.hpp"
#include "runtime/trace/trace.hpp"
#include "support/cli_runner.hpp"
#include "support/fake_job_capture.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

namespace pf = wlb::profiler;
namespace rt = wlb::runtime;
using wlb::test::fake_process;

namespace {

pf::inject_config config_for(const std::string& dir, const std::string& session) {
    pf::inject_config c;
    c.capture_dir = dir;
    c.session = session;
    return c;
}

/// Writes one process's capture of `steps` steps into `dir`.
void capture(const std::string& dir, const std::string& session, int rank, long pid, int steps,
             double slow = 1.0, bool ranges = true) {
    fake_process p(config_for(dir, session), rank, pid, slow, ranges);
    p.rec.open_window({p.now, -1, "start", "", 0, 0});
    for (int s = 0; s < steps; ++s)
        p.step();
    p.rec.close_window(p.now, "exit");
    ASSERT_EQ(p.rec.write(), "");
}

TEST(JobLayout, FromMegatronAndTorchTitanFlags) {
    std::string problem;
    auto g = pf::layout_from_commands(
        {{"torchrun", "--nproc-per-node", "8", "pretrain_gpt.py", "--tensor-model-parallel-size",
          "2", "--pipeline-model-parallel-size=2", "--num-layers", "8",
          "--num-layers-per-virtual-pipeline-stage", "2"}},
        16, problem);
    ASSERT_TRUE(g) << problem;
    EXPECT_EQ(g->spec, "tp=2,cp=1,pp=2,dp=4,vpp=2");
    EXPECT_EQ(g->order, "tp-cp-dp-pp");
    EXPECT_NE(g->from.find("Megatron"), std::string::npos);

    g = pf::layout_from_commands({{"python", "train.py", "--parallelism.context_parallel_degree",
                                   "2", "--parallelism.tensor_parallel_degree=4"}},
                                 8, problem);
    ASSERT_TRUE(g) << problem;
    EXPECT_EQ(g->spec, "tp=4,cp=2,pp=1,dp=1");
    EXPECT_NE(g->from.find("TorchTitan"), std::string::npos);

    EXPECT_FALSE(pf::layout_from_commands({{"python", "train.py", "--lr", "3e-4"}}, 8, problem));
    EXPECT_EQ(problem, "");
    EXPECT_FALSE(
        pf::layout_from_commands({{"x", "--tensor-model-parallel-size", "3"}}, 8, problem));
    EXPECT_NE(problem.find("does not divide its 8 ranks"), std::string::npos) << problem;
    EXPECT_FALSE(
        pf::layout_from_commands({{"x", "--tensor-model-parallel-size", "two"}}, 8, problem));
    EXPECT_NE(problem.find("not a degree"), std::string::npos) << problem;
}

TEST(ProfileCapture, ProcessReportsBecomeATraceAnalyzeReads) {
    wlb::test::temp_dir tmp;
    const std::string dir = (tmp / "cap").string();
    ASSERT_EQ(pf::make_private_dir(dir, ::geteuid()), "");
    capture(dir, "run", 0, 100, 4);
    capture(dir, "run", 1, 101, 4, 1.5); // half again as slow
    capture(dir, "run", 1, 102, 1);      // a restarted worker's short life: left out
    capture(dir, "older", 0, 55, 2);     // another run in the same directory: left out

    pf::capture_run run;
    run.dir = dir;
    run.session = "run";
    run.command = {"torchrun",
                   "--nproc-per-node",
                   "2",
                   "pretrain_gpt.py",
                   "--tensor-model-parallel-size",
                   "1",
                   "--pipeline-model-parallel-size",
                   "1"};
    run.exit = pf::job_exit{0, 0, 12.5};
    const auto sum = pf::write_capture_manifest(run);
    EXPECT_TRUE(sum.cuda_used);
    EXPECT_EQ(sum.processes, 3);
    EXPECT_EQ(sum.ranks, (std::vector<int>{0, 1}));
    EXPECT_EQ(sum.layout, "tp=1,cp=1,pp=1,dp=2") << "dp: the world the processes report (2)";
    EXPECT_NE(sum.layout_source.find("Megatron"), std::string::npos);
    EXPECT_EQ(sum.step_sources, "nvtx");
    EXPECT_EQ(sum.steps, 4);
    EXPECT_TRUE(sum.micro_batches);
    std::string notes;
    for (const auto& n : sum.notes)
        notes += n + "\n";
    EXPECT_NE(notes.find("session \"older\""), std::string::npos) << notes;
    EXPECT_NE(notes.find("pid102"), std::string::npos) << notes;

    const rt::trace_reader reader(dir);
    EXPECT_EQ(reader.meta().source, "profile");
    EXPECT_EQ(reader.ranks(), (std::vector<int>{0, 1}));
    EXPECT_TRUE(reader.rank_file(1).ends_with("rank_00001.pid101.jsonl"));

    pf::analysis_options o;
    const auto result = pf::analyze({dir}, o);
    EXPECT_EQ(result.job.source, "profile");
    ASSERT_EQ(result.breakdown.size(), 4u);
    for (const auto& b : result.breakdown)
        for (const auto& r : b.ranks) {
            EXPECT_GT(r.attention_s, 0.0) << "flash kernels are attention";
            EXPECT_GT(r.linear_s, 0.0) << "xmma GEMMs are linear";
        }
    EXPECT_GT(result.job.clock.matched_collectives, 0) << "the all-reduces match across ranks";
    EXPECT_EQ(result.attribution.attributed_steps, 4)
        << "micro-batches and passes from the ranges: the what-if runs; "
        << (result.attribution.steps.empty() ? "" : result.attribution.steps[0].skipped_reason);
    for (const auto& w : result.job.warnings)
        EXPECT_EQ(w.message.find("no NVTX ranges for micro-batches"), std::string::npos)
            << w.message;
}

TEST(ProfileCapture, WithoutPassRangesAnalyzeSaysWhatItCannotAttribute) {
    wlb::test::temp_dir tmp;
    const std::string dir = (tmp / "cap").string();
    ASSERT_EQ(pf::make_private_dir(dir, ::geteuid()), "");
    capture(dir, "s", 0, 10, 3, 1.0, false);
    capture(dir, "s", 1, 11, 3, 1.5, false); // half again as slow: the straggler
    pf::capture_run run;
    run.dir = dir;
    run.session = "s";
    run.layout = "dp=2";
    const auto sum = pf::write_capture_manifest(run);
    EXPECT_FALSE(sum.micro_batches);
    EXPECT_EQ(sum.layout_source, "--layout");
    const auto result = pf::analyze({dir}, {});
    bool said = false;
    for (const auto& w : result.job.warnings)
        said = said ||
               w.message.find("no NVTX ranges for micro-batches and passes") != std::string::npos;
    EXPECT_TRUE(said);
    EXPECT_EQ(result.attribution.attributed_steps, 0);
    ASSERT_EQ(result.breakdown.size(), 3u) << "the breakdown is measured all the same";
    EXPECT_GT(result.breakdown[0].ranks[0].attention_s, 0.0);
    double r0 = 0, r1 = 0;
    for (const auto& s : result.stragglers.speed)
        (s.rank == 0 ? r0 : r1) = s.relative_time;
    EXPECT_GT(r1, 1.05) << "rank 1's kernels are the slow ones";
    EXPECT_LT(r0, 1.0);
}

TEST(ProfileCapture, SessionsInTheDirectoryMostRecentFirst) {
    wlb::test::temp_dir tmp;
    const std::string dir = (tmp / "cap").string();
    ASSERT_EQ(pf::make_private_dir(dir, ::geteuid()), "");
    capture(dir, "first", 0, 1, 1);
    ::sleep(1);
    capture(dir, "second", 0, 2, 1);
    EXPECT_EQ(pf::sessions_in(dir), (std::vector<std::string>{"second", "first"}));
}

TEST(ProfileCapture, SessionFromTheLauncher) {
    auto env = [](std::map<std::string, std::string> v) {
        return [v](const char* n) -> const char* {
            auto it = v.find(n);
            return it == v.end() ? nullptr : it->second.c_str();
        };
    };
    EXPECT_EQ(pf::default_session(env({{"SLURM_JOB_ID", "77"}, {"SLURM_STEP_ID", "3"}})),
              "slurm-77.3");
    EXPECT_EQ(pf::default_session(env({{"OMPI_MCA_ess_base_jobid", "12345"}})), "ompi-12345");
    EXPECT_NE(pf::default_session(env({})), pf::default_session(env({{"PMIX_NAMESPACE", "x"}})));
}

} // namespace
