// The run's numerics across MPI processes: the CPU trainer of `wlbtune run` on packer-made steps
// (plain: fixed-length, wlb: variable-length micro-batches) under every sharding policy (per-seq,
// per-doc, adaptive, hybrid) equals a single-rank run in every rank's loss and gradients (double:
// 1e-5 relative; float: 1e-3 relative plus 1e-5 of the tensor's largest gradient). Each launch
// checks 8 (or 16) cases, so four launches cover TP, CP (2 and 4), PP (1F1B and interleaved) and
// DP. The exhaustive layout list runs in tests/unit/test_run_numerics.cpp on the fake
// communicator. Skipped when MPI is not built in.
#include "support/mpi_runner.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

namespace {

using wlb::test::run_mpi;

void expect_run_ok(int ranks, const std::string& layout, const std::string& numbers,
                   const std::string& canonical) {
    auto r = run_mpi(ranks, "run " + layout + " " + numbers);
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_NE(r.out.find(fmt::format("run ok on {} ranks, layout {}: {} cases", ranks, canonical,
                                     numbers == "both" ? 16 : 8)),
              std::string::npos)
        << r.out;
}

TEST(MpiRun, TensorContextPipelineOneFOneBInDoubleAndFloat) {
    WLB_SKIP_WITHOUT_MPI();
    expect_run_ok(8, "tp=2,cp=2,pp=2", "both", "tp=2,cp=2,pp=2,dp=1");
}

TEST(MpiRun, InterleavedPipelineWithContextAndDataParallel) {
    WLB_SKIP_WITHOUT_MPI();
    expect_run_ok(8, "cp=2,pp=2,dp=2,vpp=2", "double", "tp=1,cp=2,pp=2,dp=2,vpp=2");
}

TEST(MpiRun, InterleavedPipelineWithTensorAndDataParallel) {
    WLB_SKIP_WITHOUT_MPI();
    expect_run_ok(8, "tp=2,pp=2,dp=2,vpp=2", "double", "tp=2,cp=1,pp=2,dp=2,vpp=2");
}

TEST(MpiRun, FourWayContextParallelWithDataParallel) {
    WLB_SKIP_WITHOUT_MPI();
    expect_run_ok(8, "cp=4,dp=2", "double", "tp=1,cp=4,pp=1,dp=2");
}

} // namespace
