// The injection library's logic without a GPU (profiler/capture/inject/): which rank a process is
// from its launcher's environment; the configuration `wlbtune profile` passes through the
// environment; the private capture directory and the trigger protocol (a file of another user, a
// symbolic link or a file others may write is refused); NVTX names to steps, micro-batches and
// passes, and the per-thread range stack; steps from the period of synthetic NCCL sequences; and
// a process's records (fake, as CUPTI would deliver them) to its trace file and report.
#include "profiler/capture/inject/control_file.hpp"
#include "profiler/capture/inject/inject_config.hpp"
#include "profiler/capture/inject/launcher_env.hpp"
#include "profiler/capture/inject/nvtx_ranges.hpp"
#include "profiler/capture/inject/private_files.hpp"
#include "profiler/capture/inject/process_capture.hpp"
#include "profiler/capture/inject/step_detection.hpp"
#include "profiler/capture/inject/trace_lines.hpp"
#include "runtime/trace/trace.hpp"
#include "support/cli_runner.hpp"
#include "support/fake_job_capture.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <map>
#include <nlohmann/json.hpp>
#include <sys/stat.h>
#include <unistd.h>

namespace pf = wlb::profiler;
namespace rt = wlb::runtime;
namespace fs = std::filesystem;

using wlb::test::fake_process;
using wlb::test::make_job;

namespace {

pf::env_lookup env_of(std::map<std::string, std::string> vars) {
    auto shared = std::make_shared<std::map<std::string, std::string>>(std::move(vars));
    return [shared](const char* name) -> const char* {
        auto it = shared->find(name);
        return it == shared->end() ? nullptr : it->second.c_str();
    };
}

// ---- launcher environment -----------------------------------------------------------------

TEST(LauncherEnv, EachLauncherGivesRankSizeAndLocalRank) {
    struct expect_case {
        std::map<std::string, std::string> vars;
        const char* launcher;
        int rank, world, local, local_size;
    };
    const std::vector<expect_case> cases = {
        {{{"RANK", "5"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"}, {"LOCAL_WORLD_SIZE", "4"}},
         "torchrun",
         5,
         8,
         1,
         4},
        {{{"OMPI_COMM_WORLD_RANK", "6"},
          {"OMPI_COMM_WORLD_SIZE", "16"},
          {"OMPI_COMM_WORLD_LOCAL_RANK", "2"},
          {"OMPI_COMM_WORLD_LOCAL_SIZE", "8"}},
         "openmpi",
         6,
         16,
         2,
         8},
        {{{"PMIX_RANK", "3"}, {"PMIX_LOCAL_RANK", "3"}}, "pmix", 3, 0, 3, 0},
        {{{"PMI_RANK", "9"},
          {"PMI_SIZE", "12"},
          {"MPI_LOCALRANKID", "1"},
          {"MPI_LOCALNRANKS", "4"}},
         "pmi",
         9,
         12,
         1,
         4},
        {{{"SLURM_PROCID", "7"}, {"SLURM_NTASKS", "32"}, {"SLURM_LOCALID", "3"}},
         "slurm",
         7,
         32,
         3,
         0},
        {{}, "none", 0, 1, 0, 0},
    };
    for (const auto& c : cases) {
        const auto id = pf::identify_launcher(env_of(c.vars));
        EXPECT_EQ(id.launcher, c.launcher);
        EXPECT_EQ(id.rank, c.rank) << c.launcher;
        EXPECT_EQ(id.world_size, c.world) << c.launcher;
        EXPECT_EQ(id.local_rank, c.local) << c.launcher;
        EXPECT_EQ(id.local_world_size, c.local_size) << c.launcher;
        EXPECT_TRUE(id.warnings.empty()) << c.launcher;
    }
}

TEST(LauncherEnv, TorchrunWorkersUnderSrunTakeTheWorkersRank) {
    // srun starts one torchrun agent per node (SLURM_PROCID = node); its workers have RANK.
    const auto id = pf::identify_launcher(env_of({{"SLURM_PROCID", "1"},
                                                  {"SLURM_NTASKS", "2"},
                                                  {"RANK", "13"},
                                                  {"WORLD_SIZE", "16"},
                                                  {"LOCAL_RANK", "5"}}));
    EXPECT_EQ(id.launcher, "torchrun");
    EXPECT_EQ(id.rank, 13);
    EXPECT_EQ(id.local_rank, 5);
}

TEST(LauncherEnv, MalformedVariablesAreSkippedWithAWarning) {
    auto id = pf::identify_launcher(env_of({{"RANK", "x1"}, {"SLURM_PROCID", "4"}}));
    EXPECT_EQ(id.launcher, "slurm");
    EXPECT_EQ(id.rank, 4);
    ASSERT_EQ(id.warnings.size(), 1u);
    EXPECT_NE(id.warnings[0].find("RANK=\"x1\""), std::string::npos) << id.warnings[0];

    id = pf::identify_launcher(env_of({{"RANK", "8"}, {"WORLD_SIZE", "8"}}));
    EXPECT_EQ(id.launcher, "none") << "a rank outside its world is not believed";
    EXPECT_EQ(id.rank, 0);
    EXPECT_EQ(id.warnings.size(), 1u);

    id = pf::identify_launcher(env_of({{"RANK", "-1"}}));
    EXPECT_EQ(id.launcher, "none");
    EXPECT_EQ(id.local_rank, 0);
}

// ---- configuration ------------------------------------------------------------------------

TEST(InjectConfig, TheEnvironmentRoundTrips) {
    pf::inject_config c;
    c.capture_dir = "/scratch/me/cap";
    c.session = "s-42";
    c.mode = pf::capture_mode::armed;
    c.steps = 3;
    c.skip_steps = 2;
    c.seconds = 1.5;
    c.window_seconds = 7.25;
    c.activities = {false, true, false};
    c.nvtx = false;
    c.step_range = "^iter (\\d+)$";
    c.steps_from = pf::step_source::nccl_period;
    c.poll_ms = 250;
    c.buffer_bytes = std::size_t{8} << 20;
    c.max_buffers = 32;
    c.max_records = 12345;
    c.cupti_library = "/opt/cuda/lib64/libcupti.so.13";
    std::map<std::string, std::string> vars;
    for (const auto& [k, v] : pf::inject_environment(c))
        vars[k] = v;
    std::vector<std::string> warnings;
    EXPECT_EQ(pf::read_inject_config(env_of(vars), warnings), c);
    EXPECT_TRUE(warnings.empty());
}

TEST(InjectConfig, BadValuesKeepTheDefaultAndSaySo) {
    std::vector<std::string> warnings;
    const auto c = pf::read_inject_config(env_of({{"WLBTUNE_STEPS", "two"},
                                                  {"WLBTUNE_CAPTURE_MODE", "sometimes"},
                                                  {"WLBTUNE_ACTIVITIES", "kernel,nvlink"},
                                                  {"WLBTUNE_POLL_MS", "1"},
                                                  {"WLBTUNE_SECONDS", "-3"}}),
                                          warnings);
    EXPECT_EQ(c, pf::inject_config{});
    ASSERT_EQ(warnings.size(), 5u);
    const std::string all = warnings[0] + warnings[1] + warnings[2] + warnings[3] + warnings[4];
    for (const char* name :
         {"WLBTUNE_STEPS", "WLBTUNE_CAPTURE_MODE", "nvlink", "WLBTUNE_POLL_MS", "WLBTUNE_SECONDS"})
        EXPECT_NE(all.find(name), std::string::npos) << name;
}

TEST(InjectConfig, Activities) {
    pf::activity_selection a;
    std::string problem;
    ASSERT_TRUE(pf::parse_activities("kernel,sync", a, problem));
    EXPECT_EQ(a, (pf::activity_selection{false, false, true}));
    EXPECT_EQ(pf::activities_text(a), "kernel,sync");
    ASSERT_TRUE(pf::parse_activities("all", a, problem));
    EXPECT_EQ(a, pf::activity_selection{});
    EXPECT_FALSE(pf::parse_activities("kernels", a, problem));
    EXPECT_NE(problem.find("\"kernels\""), std::string::npos);
}

// ---- private directory and the trigger protocol --------------------------------------------

TEST(PrivateFiles, TheCaptureDirectoryIsMadePrivateAndCheckedAsSuch) {
    wlb::test::temp_dir tmp;
    const uid_t me = ::geteuid();
    const std::string dir = (tmp / "a/b/capture").string();
    ASSERT_EQ(pf::make_private_dir(dir, me), "");
    struct stat st {};
    ASSERT_EQ(::stat(dir.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    EXPECT_EQ(pf::make_private_dir(dir, me), "") << "an existing private directory is accepted";

    ASSERT_EQ(::chmod(dir.c_str(), 0750), 0);
    EXPECT_NE(pf::private_dir_problem(dir, me).find("open to other users"), std::string::npos);
    EXPECT_NE(pf::make_private_dir(dir, me), "");
    ASSERT_EQ(::chmod(dir.c_str(), 0700), 0);
    EXPECT_NE(pf::private_dir_problem(dir, me + 1).find("belongs to user id"), std::string::npos);

    const std::string link = (tmp / "link").string();
    ASSERT_EQ(::symlink(dir.c_str(), link.c_str()), 0);
    EXPECT_NE(pf::private_dir_problem(link, me).find("symbolic link"), std::string::npos);
    EXPECT_NE(pf::private_dir_problem((tmp / "missing").string(), me), "");
}

TEST(TriggerProtocol, TriggersCountUpAndTheReaderSeesEachRequest) {
    wlb::test::temp_dir tmp;
    const uid_t me = ::geteuid();
    const std::string dir = (tmp / "cap").string();
    ASSERT_EQ(pf::make_private_dir(dir, me), "");
    pf::control_reader reader(dir, me);
    std::string problem;
    EXPECT_FALSE(reader.poll(problem).has_value()) << "no trigger yet";
    EXPECT_EQ(problem, "");

    auto r1 = pf::write_trigger(dir, me, 2, 0.0, problem);
    ASSERT_TRUE(r1) << problem;
    EXPECT_EQ(r1->id, 1);
    auto seen = reader.poll(problem);
    ASSERT_TRUE(seen);
    EXPECT_EQ(seen->id, r1->id);
    EXPECT_EQ(seen->steps, 2);
    EXPECT_GT(seen->written_ns, 0) << "the request's time, for the processes to agree on steps";

    auto r2 = pf::write_trigger(dir, me, 0, 3.5, problem);
    ASSERT_TRUE(r2) << problem;
    EXPECT_EQ(r2->id, 2);
    seen = reader.poll(problem);
    ASSERT_TRUE(seen);
    EXPECT_EQ(seen->id, 2);
    EXPECT_EQ(seen->steps, 0);
    EXPECT_DOUBLE_EQ(seen->seconds, 3.5);

    struct stat st {};
    ASSERT_EQ(::stat((dir + "/control.json").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(TriggerProtocol, ForeignLinkedOrOpenControlFilesAreIgnoredWithOneWarning) {
    wlb::test::temp_dir tmp;
    const uid_t me = ::geteuid();
    const std::string dir = (tmp / "cap").string();
    ASSERT_EQ(pf::make_private_dir(dir, me), "");
    std::string problem;
    ASSERT_TRUE(pf::write_trigger(dir, me, 1, 0.0, problem));
    const std::string control = dir + "/control.json";

    // Owned by someone else (the reader expects another user id).
    pf::control_reader stranger(dir, me + 1);
    EXPECT_FALSE(stranger.poll(problem));
    EXPECT_NE(problem.find("belongs to user id"), std::string::npos) << problem;

    pf::control_reader reader(dir, me);
    ASSERT_EQ(::chmod(control.c_str(), 0666), 0);
    EXPECT_FALSE(reader.poll(problem));
    EXPECT_NE(problem.find("writable by other users"), std::string::npos) << problem;
    EXPECT_FALSE(reader.poll(problem));
    EXPECT_EQ(problem, "") << "the same problem is reported once";

    ASSERT_EQ(::unlink(control.c_str()), 0);
    const std::string elsewhere = (tmp / "elsewhere.json").string();
    std::ofstream(elsewhere) << pf::control_text({7, 1, 0.0});
    ASSERT_EQ(::chmod(elsewhere.c_str(), 0600), 0);
    ASSERT_EQ(::symlink(elsewhere.c_str(), control.c_str()), 0);
    EXPECT_FALSE(reader.poll(problem));
    EXPECT_NE(problem.find("symbolic link"), std::string::npos) << problem;
    EXPECT_FALSE(pf::write_trigger(dir, me, 1, 0.0, problem)) << "trigger refuses it too";

    ASSERT_EQ(::unlink(control.c_str()), 0);
    std::ofstream(control) << "{\"schema\": \"wlbtune.control/1\", \"id\": 0}";
    ASSERT_EQ(::chmod(control.c_str(), 0600), 0);
    EXPECT_FALSE(reader.poll(problem));
    EXPECT_NE(problem.find("\"id\""), std::string::npos) << problem;

    ASSERT_EQ(::chmod(dir.c_str(), 0755), 0);
    EXPECT_FALSE(pf::write_trigger(dir, me, 1, 0.0, problem));
    EXPECT_NE(problem.find("open to other users"), std::string::npos) << problem;
    ASSERT_EQ(::chmod(dir.c_str(), 0700), 0);
}

// ---- NVTX names and the range stack --------------------------------------------------------

TEST(RangeRules, BuiltInNames) {
    const pf::range_rules rules;
    struct named {
        const char* name;
        pf::range_role role;
        std::int64_t number;
    };
    for (const auto& c : std::vector<named>{
             {"ProfilerStep#12", pf::range_role::step, 12},
             {"step", pf::range_role::step, -1},
             {"Step 7", pf::range_role::step, 7},
             {"train_step", pf::range_role::step, -1},
             {"iteration_3", pf::range_role::step, 3},
             {"microbatch 2", pf::range_role::micro_batch, 2},
             {"micro-batch-5", pf::range_role::micro_batch, 5},
             {"forward-compute", pf::range_role::forward, -1},
             {"megatron.core.pipeline_parallel.schedules.forward_step", pf::range_role::forward,
              -1},
             {"bwd", pf::range_role::backward, -1},
             {"backward_step", pf::range_role::backward, -1},
             {"Optimizer.step#AdamW.step", pf::range_role::optimizer, -1},
             {"optimizer", pf::range_role::optimizer, -1},
             {"aten::addmm, seq = 12", pf::range_role::none, -1},
             {"autograd::engine::evaluate_function: MmBackward0", pf::range_role::none, -1},
             {"forward-backward", pf::range_role::none, -1},
             {"stepper", pf::range_role::none, -1}}) {
        const auto m = rules.classify(c.name);
        EXPECT_EQ(m.role, c.role) << c.name;
        EXPECT_EQ(m.number, c.number) << c.name;
    }
}

TEST(RangeRules, AStepPatternReplacesTheBuiltInStepNames) {
    const pf::range_rules rules("^it(\\d+)/train$");
    EXPECT_EQ(rules.classify("it42/train").role, pf::range_role::step);
    EXPECT_EQ(rules.classify("it42/train").number, 42);
    EXPECT_EQ(rules.classify("step 3").role, pf::range_role::none);
    EXPECT_EQ(rules.classify("forward").role, pf::range_role::forward);
    EXPECT_THROW(pf::range_rules("("), std::regex_error);
}

TEST(NvtxTracker, StepsMicroBatchesAndPassesFromTheRangeStack) {
    pf::nvtx_tracker t{pf::range_rules()};
    const std::uint64_t main = 1, other = 2;
    std::int64_t now = 0;
    auto push = [&](std::uint64_t th, const char* name) {
        return t.push(th, name, now += 10);
    };
    auto pop = [&](std::uint64_t th) {
        return t.pop(th, now += 10);
    };

    std::map<std::string, std::uint64_t> ctx;
    for (int step = 0; step < 2; ++step) {
        const auto s = push(main, "train_step");
        ASSERT_NE(s, 0u);
        EXPECT_EQ(t.steps_begun(), step + 1);
        EXPECT_EQ(push(main, "aten::mm"), 0u) << "an op range means nothing";
        for (int mb = 0; mb < 2; ++mb) {
            ctx["f" + std::to_string(step) + std::to_string(mb)] = push(main, "forward");
            pop(main);
            const auto b = push(main, "backward");
            ctx["b" + std::to_string(step) + std::to_string(mb)] = b;
            // Recomputation: a forward inside the backward is part of the backward.
            ctx["r" + std::to_string(step) + std::to_string(mb)] = push(main, "forward");
            EXPECT_EQ(pop(main), ctx["r" + std::to_string(step) + std::to_string(mb)]);
            EXPECT_EQ(pop(main), b);
        }
        EXPECT_EQ(pop(main), 0u) << "aten::mm";
        ctx["o" + std::to_string(step)] = push(main, "optimizer");
        pop(main);
        EXPECT_EQ(pop(main), s);
        EXPECT_EQ(t.steps_ended(), step + 1);
    }
    // Another thread's explicit micro-batch range, no step range open on it.
    const auto mb = push(other, "microbatch 7");
    const auto inner = push(other, "fwd");
    pop(other);
    pop(other);
    EXPECT_EQ(pop(other), 0u);

    const auto resolved = t.resolve([](std::int64_t) { return 99; });
    std::map<std::uint64_t, pf::range_context> by_id(resolved.contexts.begin(),
                                                     resolved.contexts.end());
    for (int step = 0; step < 2; ++step)
        for (int m = 0; m < 2; ++m) {
            const auto key = std::to_string(step) + std::to_string(m);
            EXPECT_EQ(by_id[ctx["f" + key]].step, step);
            EXPECT_EQ(by_id[ctx["f" + key]].micro_batch, m) << "the m-th forward of the step";
            EXPECT_EQ(by_id[ctx["f" + key]].ph, rt::phase::fwd);
            EXPECT_EQ(by_id[ctx["b" + key]].micro_batch, m);
            EXPECT_EQ(by_id[ctx["b" + key]].ph, rt::phase::bwd);
            EXPECT_EQ(by_id[ctx["r" + key]].ph, rt::phase::bwd) << "recomputation";
            EXPECT_EQ(by_id[ctx["r" + key]].micro_batch, m);
        }
    EXPECT_EQ(by_id[ctx["o1"]].ph, rt::phase::optimizer);
    EXPECT_EQ(by_id[ctx["o1"]].micro_batch, -1);
    EXPECT_EQ(by_id[ctx["o1"]].step, 1);
    EXPECT_EQ(by_id[mb].micro_batch, 7);
    EXPECT_EQ(by_id[mb].step, 99) << "outside every step range: the step of its time";
    EXPECT_EQ(by_id[inner].micro_batch, 7) << "a pass inside a micro-batch range keeps it";
    EXPECT_EQ(by_id[inner].ph, rt::phase::fwd);

    const auto spans = t.step_spans();
    ASSERT_EQ(spans.size(), 2u);
    EXPECT_EQ(spans[0].step, 0);
    EXPECT_EQ(spans[1].step, 1);
    EXPECT_LT(spans[0].end_ns, spans[1].start_ns);
    EXPECT_EQ(t.stats().unmatched_pops, 1u);
    EXPECT_EQ(*t.step_end_time(1), spans[0].end_ns);
    EXPECT_FALSE(t.step_end_time(3));
}

TEST(NvtxTracker, NumberedStepsAndStartEndRanges) {
    pf::nvtx_tracker t{pf::range_rules()};
    t.start(100, "ProfilerStep#41", 10);
    t.start(101, "not a step", 11);
    t.end(101, 12);
    t.end(100, 50);
    t.start(102, "ProfilerStep#42", 60);
    EXPECT_EQ(t.steps_begun(), 2);
    EXPECT_EQ(t.steps_ended(), 1);
    t.end(102, 90);
    const auto spans = t.step_spans();
    ASSERT_EQ(spans.size(), 2u);
    EXPECT_EQ(spans[0], (pf::step_span{41, 10, 50}));
    EXPECT_EQ(spans[1], (pf::step_span{42, 60, 90}));
    EXPECT_EQ(t.stats().ranges, 3u);
    EXPECT_EQ(t.stats().kept, 2u);
}

// ---- steps from the NCCL period -------------------------------------------------------------

TEST(StepDetection, ThePeriodOfTheNcclSequenceCutsStepsInTheIdleGap) {
    const std::vector<std::string> pattern = {"ncclDevKernel_AllGather_RING_LL",
                                              "ncclDevKernel_AllReduce_Sum_bf16_RING_LL",
                                              "ncclDevKernel_ReduceScatter_Sum_bf16_RING_LL"};
    const auto job = make_job(6, pattern, 1'000, 20'000, true);
    const auto plan = pf::steps_from_nccl(job.activities);
    ASSERT_EQ(plan.source, wlb::profiler::step_source::nccl_period) << plan.description;
    EXPECT_NE(plan.description.find("every 3 kernels"), std::string::npos) << plan.description;
    // Six whole periods; the broadcast before the first one is initialization.
    ASSERT_EQ(plan.steps.size(), 6u) << plan.description;
    EXPECT_EQ(plan.partial_left_out, 1);
    for (std::size_t s = 0; s < plan.steps.size(); ++s) {
        EXPECT_EQ(plan.steps[s].step, static_cast<std::int64_t>(s));
        // The cut is inside the host gap before the step (its middle), and the step runs to the
        // next cut.
        EXPECT_GT(plan.steps[s].start_ns, job.idle[s]) << s;
        EXPECT_LE(plan.steps[s].start_ns, job.step_starts[s]) << s;
        EXPECT_EQ(plan.steps[s].start_ns, job.idle[s] + 10'000) << s;
        if (s + 1 < plan.steps.size()) {
            EXPECT_EQ(plan.steps[s].end_ns, plan.steps[s + 1].start_ns);
        }
    }
    EXPECT_GT(plan.steps.back().end_ns, job.activities.back().end_ns)
        << "the last step ends where a next cut would be";
}

TEST(StepDetection, OneRepeatedCollectiveNeedsTheGapToFindTheStep) {
    // DDP-like: four identical all-reduces per step; only the gap tells steps apart.
    const std::vector<std::string> pattern(4, "ncclDevKernel_AllReduce_Sum_f32_RING_LL");
    const auto job = make_job(5, pattern, 1'000, 30'000, false);
    const auto plan = pf::steps_from_nccl(job.activities);
    ASSERT_EQ(plan.source, wlb::profiler::step_source::nccl_period) << plan.description;
    EXPECT_NE(plan.description.find("every 4 kernels"), std::string::npos) << plan.description;
    EXPECT_EQ(plan.steps.size(), 5u);
    EXPECT_EQ(plan.partial_left_out, 0) << "the first step begins with the first NCCL kernel";
}

TEST(StepDetection, NoPeriodNoSteps) {
    // Evenly spaced, the same collective: no gap stands out, so no step can be told.
    const std::vector<std::string> pattern(4, "ncclDevKernel_AllReduce_Sum_f32_RING_LL");
    auto job = make_job(5, pattern, 1'000, 0, false);
    EXPECT_EQ(pf::steps_from_nccl(job.activities).source, wlb::profiler::step_source::none);
    // Too short: two periods.
    job = make_job(2, {"ncclDevKernel_AllGather_RING_LL", "ncclDevKernel_ReduceScatter_RING_LL"},
                   1'000, 20'000, false);
    EXPECT_EQ(pf::steps_from_nccl(job.activities).source, wlb::profiler::step_source::none);
    // Irregular names.
    std::vector<std::int32_t> symbols;
    std::vector<std::int64_t> gaps;
    for (int i = 0; i < 60; ++i) {
        symbols.push_back((i * 7919 + i * i) % 11);
        gaps.push_back(100 + (i * 31) % 17);
    }
    gaps.pop_back();
    EXPECT_FALSE(pf::find_nccl_period(symbols, gaps));
}

TEST(StepDetection, SourcesInOrderOfPreference) {
    const std::vector<pf::step_span> nvtx = {{0, 0, 100}, {1, 100, 200}};
    const std::vector<pf::step_span> api = {{0, 0, 200}};
    const auto job =
        make_job(4, {"ncclDevKernel_AllGather_RING_LL", "ncclDevKernel_ReduceScatter_RING_LL"},
                 1'000, 20'000, false);
    using src = wlb::profiler::step_source;
    EXPECT_EQ(pf::choose_steps(src::automatic, nvtx, api, job.activities, "x").source, src::nvtx);
    EXPECT_EQ(pf::choose_steps(src::automatic, {}, api, job.activities, "x").source,
              src::profiler_api);
    EXPECT_EQ(pf::choose_steps(src::automatic, {}, {}, job.activities, "x").source,
              src::nccl_period);
    const auto none = pf::choose_steps(src::automatic, {}, {}, {}, "NAMES");
    EXPECT_EQ(none.source, src::none);
    EXPECT_NE(none.description.find("NAMES"), std::string::npos) << none.description;
    const auto forced = pf::choose_steps(src::nvtx, {}, api, job.activities, "NAMES");
    EXPECT_EQ(forced.source, src::none);
    EXPECT_NE(forced.description.find("WLBTUNE_STEP_SOURCE=nvtx"), std::string::npos);
    ASSERT_EQ(forced.steps.size(), 1u) << "one step holds everything";
    EXPECT_EQ(forced.steps[0].start_ns, job.activities.front().start_ns);
}

// ---- records to trace -------------------------------------------------------------------------

TEST(TraceLines, TheSameBytesAsTheRuntimesWriter) {
    std::vector<rt::trace_event> events;
    for (int l = 0; l < rt::lane_count; ++l)
        for (int k = 0; k < 5; ++k)
            for (int p = 0; p < 4; ++p) {
                rt::trace_event e;
                e.rank = l * 100 + k;
                e.where = static_cast<rt::lane>(l);
                e.kind = static_cast<rt::event_kind>(k);
                e.ph = static_cast<rt::phase>(p);
                e.name = "void f<\"q\\\\\", 3>(float*) \xc3\xa9";
                e.start_ns = -5 + l * 1'000'000'007LL * k;
                e.dur_ns = p;
                e.step = k - 1;
                e.micro_batch = p - 1;
                e.stage = l;
                e.virtual_stage = k;
                if (p == 1)
                    e.bytes = 4096.5;
                if (p == 2)
                    e.flops = 1e15;
                if (p == 3)
                    e.flow_id = 77;
                events.push_back(e);
            }
    for (const auto& e : events)
        EXPECT_EQ(pf::trace_line(e), rt::to_json(e).dump());
}

const rt::trace_event* first(const std::vector<rt::trace_event>& events, std::int64_t step,
                             std::string_view prefix, int micro_batch = -2) {
    for (const auto& e : events)
        if (e.step == step && e.name.starts_with(prefix) &&
            (micro_batch == -2 || e.micro_batch == micro_batch))
            return &e;
    return nullptr;
}

TEST(ProcessCapture, RecordsBecomeTheRanksTraceWithStepsMicroBatchesAndPasses) {
    wlb::test::temp_dir tmp;
    pf::inject_config c;
    c.capture_dir = (tmp / "cap").string();
    c.session = "s1";
    c.skip_steps = 1;
    c.steps = 2;
    ASSERT_EQ(pf::make_private_dir(c.capture_dir, ::geteuid()), "");
    fake_process p(c);
    p.rec.open_window({p.now, -1, "start", "", c.steps, c.skip_steps});
    for (int s = 0; s < 4; ++s)
        p.step();
    p.rec.close_window(p.now, "exit");

    const auto out = p.rec.convert();
    std::set<std::int64_t> steps;
    for (const auto& e : out.events) {
        steps.insert(e.step);
        EXPECT_EQ(e.rank, 3);
    }
    EXPECT_EQ(steps, (std::set<std::int64_t>{1, 2})) << "skip one step, keep two";
    for (std::int64_t s : {1, 2})
        for (int mb = 0; mb < 2; ++mb) {
            const auto* f = first(out.events, s, "flash_fwd", mb);
            ASSERT_NE(f, nullptr) << s << " " << mb;
            EXPECT_EQ(f->ph, rt::phase::fwd);
            const auto* b = first(out.events, s, "flash_bwd", mb);
            ASSERT_NE(b, nullptr) << "the backward thread's kernel, placed by its time";
            EXPECT_EQ(b->ph, rt::phase::bwd);
        }
    const auto* ar = first(out.events, 1, "ncclDevKernel_AllReduce");
    ASSERT_NE(ar, nullptr);
    EXPECT_EQ(ar->where, rt::lane::dp) << "NCCL kernels on their own lane";
    EXPECT_EQ(ar->kind, rt::event_kind::collective);
    EXPECT_EQ(first(out.events, 2, "multi_tensor_apply")->ph, rt::phase::optimizer);

    const auto& r = out.report;
    EXPECT_EQ(r["schema"], "wlbtune.process_capture/1");
    EXPECT_EQ(r["steps"]["source"], "nvtx");
    EXPECT_EQ(r["steps"]["found"], 4);
    EXPECT_EQ(r["steps"]["kept"], nlohmann::json::array({1, 2}));
    EXPECT_EQ(r["attribution"]["micro_batches"], true);
    EXPECT_EQ(r["attribution"]["linked_by_time"], 16)
        << "two backward kernels x 2 micro-batches x 4 steps (before the steps are chosen)";
    EXPECT_EQ(r["capture"]["records"]["kernels"], out.events.size());
    EXPECT_EQ(r["launcher"], "torchrun");

    // The files: the rank file is a wlbtune.trace/1 rank file, the report beside it.
    ASSERT_EQ(p.rec.write(), "");
    const auto stem = fs::path(c.capture_dir) / "rank_00003.pid4711";
    std::ifstream lines(stem.string() + ".jsonl");
    std::string line;
    std::size_t n = 0;
    while (std::getline(lines, line)) {
        const auto e = rt::trace_event_from_json(nlohmann::json::parse(line), "test");
        EXPECT_EQ(e.name, out.events[n].name);
        EXPECT_EQ(e.step, out.events[n].step);
        ++n;
    }
    EXPECT_EQ(n, out.events.size());
    const auto report =
        nlohmann::json::parse(wlb::test::read_text(stem.string() + ".capture.json"));
    EXPECT_EQ(report["file"], "rank_00003.pid4711.jsonl");
    EXPECT_EQ(report["events"], n);
    struct stat st {};
    ASSERT_EQ(::stat((stem.string() + ".jsonl").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(ProcessCapture, TriggeredWindowsKeepTheirStepsOnly) {
    pf::inject_config c;
    c.mode = pf::capture_mode::armed;
    fake_process p(c);
    p.step(); // before any trigger: not captured by a window
    p.rec.open_window({p.now, -1, "trigger 1", "", 1, 0});
    p.step();
    p.step();
    p.rec.close_window(p.now, "1 step");
    p.step();
    p.rec.open_window({p.now, -1, "trigger 2", "", 0, 0});
    p.step();
    p.rec.close_window(p.now, "20 s");
    const auto out = p.rec.convert();
    std::set<std::int64_t> steps;
    for (const auto& e : out.events)
        steps.insert(e.step);
    EXPECT_EQ(steps, (std::set<std::int64_t>{1, 4}));
    ASSERT_EQ(out.report["windows"].size(), 2u);
    EXPECT_EQ(out.report["windows"][0]["steps_kept"], nlohmann::json::array({1}));
    EXPECT_EQ(out.report["windows"][1]["steps_kept"], nlohmann::json::array({4}));
}

TEST(ProcessCapture, ATriggersTimeChoosesTheSameStepsInEveryProcess) {
    // Two processes see one trigger at different moments (their polls): one as step 1 begins,
    // the other 100 ns into it. By their own window alone they would keep different steps; from
    // the trigger's time plus two poll intervals (200 ns here) they keep the same one.
    pf::inject_config c;
    c.mode = pf::capture_mode::armed;
    auto kept = [&](std::int64_t delay, std::int64_t margin) {
        fake_process p(c);
        p.step();
        const std::int64_t trigger = p.now; // step 1 begins now
        for (int s = 0; s < 3; ++s)
            p.step();
        p.rec.open_window(
            {trigger + delay, -1, "trigger 1", "", 1, 0, margin < 0 ? 0 : trigger + margin});
        p.rec.close_window(p.now, "1 step");
        std::set<std::int64_t> steps;
        for (const auto& e : p.rec.convert().events)
            steps.insert(e.step);
        return steps;
    };
    EXPECT_EQ(kept(0, -1), (std::set<std::int64_t>{1}));
    EXPECT_EQ(kept(100, -1), (std::set<std::int64_t>{2})) << "without the trigger's time";
    EXPECT_EQ(kept(0, 200), (std::set<std::int64_t>{2}));
    EXPECT_EQ(kept(100, 200), (std::set<std::int64_t>{2}));
}

TEST(ProcessCapture, WithoutRangesStepsComeFromTheNcclPeriodAndNothingIsAttributed) {
    pf::inject_config c;
    fake_process p(c, 0);
    const auto job =
        make_job(5, {"ncclDevKernel_AllGather_RING_LL", "ncclDevKernel_ReduceScatter_RING_LL"},
                 1'000, 20'000, true);
    p.rec.open_window({0, -1, "start", "", 0, 0});
    pf::capture_batch b;
    b.activities = job.activities;
    p.rec.add(std::move(b));
    const auto out = p.rec.convert();
    EXPECT_EQ(out.report["steps"]["source"], "nccl");
    EXPECT_EQ(out.report["steps"]["kept"].size(), 5u);
    EXPECT_EQ(out.report["attribution"]["micro_batches"], false);
    EXPECT_EQ(out.report["attribution"]["passes"], false);
    std::set<std::int64_t> steps;
    for (const auto& e : out.events)
        steps.insert(e.step);
    EXPECT_EQ(steps, (std::set<std::int64_t>{0, 1, 2, 3, 4}));
    for (const auto& e : out.events)
        if (e.name.starts_with("init_weights") || e.name.starts_with("ncclDevKernel_Broadcast"))
            ADD_FAILURE() << "initialization before the first period is left out: " << e.name;
}

TEST(ProcessCapture, TheRecordLimitDropsAndCounts) {
    pf::inject_config c;
    c.max_records = 5;
    fake_process p(c);
    p.rec.open_window({0, -1, "start", "", 0, 0});
    p.step(); // 10 kernels
    const auto out = p.rec.convert();
    EXPECT_EQ(out.report["capture"]["losses"]["dropped_records"], 5);
    const auto warnings = out.report["capture"]["warnings"].dump();
    EXPECT_NE(warnings.find("WLBTUNE_MAX_RECORDS"), std::string::npos) << warnings;
}

TEST(ProcessCapture, AnUnwritableDirectoryIsReportedNotThrown) {
    pf::inject_config c;
    c.capture_dir = "/proc/definitely/not/here";
    fake_process p(c);
    p.rec.open_window({0, -1, "start", "", 0, 0});
    p.step();
    const auto problem = p.rec.write();
    EXPECT_NE(problem.find("cannot create"), std::string::npos) << problem;
}

} // namespace
