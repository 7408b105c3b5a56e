// The MPI communicator under mpirun: collectives on every group of a layout, and the watchdog
// ending a job in which one rank stops participating. Skipped when MPI is not built in.
#include "support/mpi_runner.hpp"

#include <gtest/gtest.h>

namespace {

using wlb::test::run_mpi;

TEST(MpiCommunicator, CollectivesOnEveryGroupOfA3DLayout) {
    WLB_SKIP_WITHOUT_MPI();
    auto r = run_mpi(8, "collectives tp=2,cp=2,dp=2");
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("collectives ok on 8 ranks"), std::string::npos) << r.out;
}

TEST(MpiCommunicator, CollectivesOnPipelineGroups) {
    WLB_SKIP_WITHOUT_MPI();
    auto r = run_mpi(4, "collectives cp=2,pp=2");
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
}

TEST(MpiCommunicator, LayoutOfAnotherWorldSizeIsRefusedBeforeAnyWork) {
    WLB_SKIP_WITHOUT_MPI();
    auto r = run_mpi(2, "collectives tp=2,cp=2");
    EXPECT_EQ(r.exit_code, 3) << r.err; // bad input, on every rank, no hang
    EXPECT_NE(r.err.find("layout tp=2,cp=2,pp=1,dp=1 needs 4 ranks but the job has 2"),
              std::string::npos)
        << r.err;
}

TEST(MpiWatchdog, SilentRankMakesEveryRankExitNonZeroNamingOperationGroupAndPeer) {
    WLB_SKIP_WITHOUT_MPI();
    // Rank 2 sleeps instead of entering the all_reduce; the others must abort the whole job
    // (rank 2 included) after the 1.5 s watchdog, long before the 60 s hang guard of run_mpi.
    auto r = run_mpi(3, "watchdog 1.5 2");
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.exit_code, wlb::test::hang_exit_code) << "the job hung until the guard killed it";
    EXPECT_NE(r.err.find("watchdog: all_reduce on world group [0, 1, 2] did not complete within "
                         "1.5 s"),
              std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("missing peers (world ranks): [2]"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("FAIL"), std::string::npos) << r.err;
}

TEST(MpiWatchdog, SilentRankInASubGroupIsNamedWithItsGroup) {
    WLB_SKIP_WITHOUT_MPI();
    // cp groups of tp=2,cp=2: [0, 2] and [1, 3]. World rank 3 is silent: its CP peer 1 times out
    // in the cp all_reduce and aborts the job; ranks 0 and 2 pass theirs and sleep until
    // killed.
    auto r = run_mpi(4, "watchdog 1.5 3 tp=2,cp=2");
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.exit_code, wlb::test::hang_exit_code) << "the job hung until the guard killed it";
    EXPECT_NE(r.err.find("watchdog: all_reduce on cp group [1, 3] did not complete within 1.5 s "
                         "on world rank 1; missing peers (world ranks): [3]"),
              std::string::npos)
        << r.err;
    EXPECT_EQ(r.err.find("FAIL"), std::string::npos) << r.err;
}

// The decoder step across MPI processes equals the single-rank run (the probe checks every
// gradient element of every rank against it within 1e-5 relative, in double).
TEST(MpiDecoder, TensorContextAndDataParallelStepEqualsSingleRank) {
    WLB_SKIP_WITHOUT_MPI();
    auto r = run_mpi(8, "decoder tp=2,cp=2,dp=2 per_doc");
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("decoder ok on 8 ranks"), std::string::npos) << r.out;
}

TEST(MpiDecoder, FourWayContextParallelPerSequenceEqualsSingleRank) {
    WLB_SKIP_WITHOUT_MPI();
    auto r = run_mpi(4, "decoder cp=4 per_seq");
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("decoder ok on 4 ranks"), std::string::npos) << r.out;
}

TEST(MpiDecoder, PipelineOneFOneBWithTensorAndContextParallelEqualsSingleRank) {
    WLB_SKIP_WITHOUT_MPI();
    auto r = run_mpi(8, "decoder tp=2,cp=2,pp=2 per_seq");
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("decoder ok on 8 ranks, layout tp=2,cp=2,pp=2,dp=1"), std::string::npos)
        << r.out;
}

TEST(MpiDecoder, InterleavedPipelineWithDataParallelEqualsSingleRank) {
    WLB_SKIP_WITHOUT_MPI();
    auto r = run_mpi(4, "decoder pp=2,dp=2,vpp=2 per_doc");
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("decoder ok on 4 ranks, layout tp=1,cp=1,pp=2,dp=2,vpp=2"),
              std::string::npos)
        << r.out;
}

} // namespace
