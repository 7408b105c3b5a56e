// The communicator seam through its in-process fake: every collective against its closed form,
// sub-communicators of a layout, point-to-point, and the watchdog (no hang, a message naming the
// operation, the group and the missing peer).
#include "base/error.hpp"
#include "runtime/comm/communicator.hpp"
#include "runtime/comm/fake_communicator.hpp"
#include "runtime/parallel/layout.hpp"

#include <atomic>
#include <cstdlib>
#include <gtest/gtest.h>
#include <numeric>

using wlb::runtime::axis;
using wlb::runtime::communicator;
using wlb::runtime::fake_world;
using wlb::runtime::layout;

namespace {

// Value member m contributes at index i: distinct per (m, i) and exact in float.
template <typename T>
T value(int m, std::size_t i) {
    return static_cast<T>(1000 * (m + 1) + static_cast<int>(i));
}

template <typename T>
void check_collectives(communicator& c) {
    const int n = c.size();
    const int me = c.rank();
    const std::size_t block = 5;
    // all_gather: member m's block at offset m * block.
    std::vector<T> mine(block);
    for (std::size_t i = 0; i < block; ++i)
        mine[i] = value<T>(me, i);
    std::vector<T> all(block * static_cast<std::size_t>(n));
    c.all_gather(std::span<const T>(mine), std::span<T>(all));
    for (int m = 0; m < n; ++m)
        for (std::size_t i = 0; i < block; ++i)
            ASSERT_EQ(all[static_cast<std::size_t>(m) * block + i], value<T>(m, i));
    // reduce_scatter: member me gets sum over m of block me of m's buffer.
    std::vector<T> whole(block * static_cast<std::size_t>(n));
    for (std::size_t i = 0; i < whole.size(); ++i)
        whole[i] = value<T>(me, i);
    std::vector<T> part(block);
    c.reduce_scatter(std::span<const T>(whole), std::span<T>(part));
    for (std::size_t i = 0; i < block; ++i) {
        T expect = 0;
        for (int m = 0; m < n; ++m)
            expect += value<T>(m, static_cast<std::size_t>(me) * block + i);
        ASSERT_EQ(part[i], expect);
    }
    // all_reduce in place.
    std::vector<T> data = mine;
    c.all_reduce(std::span<T>(data));
    for (std::size_t i = 0; i < block; ++i) {
        T expect = 0;
        for (int m = 0; m < n; ++m)
            expect += value<T>(m, i);
        ASSERT_EQ(data[i], expect);
    }
    c.barrier();
}

TEST(FakeCommunicator, CollectivesMatchClosedFormsInFloatAndDouble) {
    for (int n : {1, 2, 3, 4}) {
        fake_world::run(n, 10.0, [](communicator& c) {
            check_collectives<float>(c);
            check_collectives<double>(c);
        });
    }
}

TEST(FakeCommunicator, GroupCommunicatorsFollowTheLayout) {
    const layout l(2, 2, 2, 1);
    fake_world::run(l.world_size(), 10.0, [&](communicator& world) {
        auto groups = wlb::runtime::make_group_communicators(world, l);
        for (axis a : wlb::runtime::all_axes) {
            communicator& c = groups.of(static_cast<int>(a));
            const auto members = l.group_of(world.rank(), a);
            ASSERT_EQ(c.group().world_ranks, members);
            ASSERT_EQ(c.group().kind, wlb::runtime::axis_name(a));
            ASSERT_EQ(c.rank(), l.coords_of(world.rank())[a]);
            // all_reduce of the world ranks sums exactly this group's members.
            std::vector<double> x = {static_cast<double>(world.rank())};
            c.all_reduce(std::span<double>(x));
            ASSERT_EQ(x[0], std::accumulate(members.begin(), members.end(), 0.0));
            check_collectives<double>(c);
        }
    });
}

TEST(FakeCommunicator, LayoutOfAnotherWorldSizeIsRefused) {
    fake_world world(2);
    auto c = world.communicator_for(0);
    EXPECT_THROW((void)wlb::runtime::make_group_communicators(*c, layout(2, 2, 1, 1)),
                 wlb::input_error);
}

TEST(FakeCommunicator, SendReceiveMatchByPeerAndTagInOrder) {
    fake_world::run(3, 10.0, [](communicator& c) {
        const int next = (c.rank() + 1) % c.size();
        const int prev = (c.rank() + c.size() - 1) % c.size();
        std::vector<float> a = {static_cast<float>(c.rank()), 1.5f};
        std::vector<float> b = {static_cast<float>(c.rank()), 2.5f};
        c.send(std::span<const float>(a), next, 7);
        c.send(std::span<const float>(b), next, 7);
        std::vector<float> got(2);
        c.recv(std::span<float>(got), prev, 7);
        ASSERT_EQ(got[0], static_cast<float>(prev));
        ASSERT_EQ(got[1], 1.5f);
        c.recv(std::span<float>(got), prev, 7);
        ASSERT_EQ(got[1], 2.5f);
    });
}

TEST(FakeCommunicatorWatchdog, MissingRankAbortsEveryWaitingRank) {
    std::atomic<int> finished{0};
    try {
        fake_world::run(4, 0.3, [&](communicator& world) {
            if (world.rank() != 3) { // world rank 3 stops participating
                std::vector<double> x(4, 1.0);
                world.all_reduce(std::span<double>(x));
            }
            ++finished;
        });
        FAIL() << "the watchdog did not fire";
    } catch (const wlb::runtime_failure& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("watchdog: all_reduce on world group [0, 1, 2, 3]"), std::string::npos)
            << what;
        EXPECT_NE(what.find("missing peers (world ranks): [3]"), std::string::npos) << what;
    }
    // Only the silent rank returned normally: the three waiting ranks were aborted, not hung.
    EXPECT_EQ(finished.load(), 1);
}

TEST(FakeCommunicatorWatchdog, NamesTheSubGroupAndItsMissingMember) {
    const layout l(2, 1, 1, 2); // tp groups [0, 1] and [2, 3]
    try {
        fake_world::run(4, 0.3, [&](communicator& world) {
            auto groups = wlb::runtime::make_group_communicators(world, l);
            if (world.rank() == 2) {
                std::vector<float> x(4, 1.0f);
                std::vector<float> all(8);
                groups.tp->all_gather(std::span<const float>(x), std::span<float>(all));
            }
        });
        FAIL() << "the watchdog did not fire";
    } catch (const wlb::runtime_failure& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("watchdog: all_gather on tp group [2, 3]"), std::string::npos) << what;
        EXPECT_NE(what.find("world rank 2"), std::string::npos) << what;
        EXPECT_NE(what.find("missing peers (world ranks): [3]"), std::string::npos) << what;
    }
}

TEST(FakeCommunicatorWatchdog, ReceiveFromSilentPeerNamesIt) {
    try {
        fake_world::run(2, 0.2, [](communicator& c) {
            if (c.rank() == 0) {
                std::vector<float> x(3);
                c.recv(std::span<float>(x), 1, 4);
            }
        });
        FAIL() << "the watchdog did not fire";
    } catch (const wlb::runtime_failure& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("recv(tag 4)"), std::string::npos) << what;
        EXPECT_NE(what.find("world group [0, 1]"), std::string::npos) << what;
        EXPECT_NE(what.find("missing peers (world ranks): [1]"), std::string::npos) << what;
    }
}

TEST(FakeCommunicator, ARankFailureWakesItsPeersWithItsOwnError) {
    EXPECT_THROW(fake_world::run(2, 30.0,
                                 [](communicator& c) {
                                     if (c.rank() == 1)
                                         throw wlb::input_error("rank 1 input");
                                     c.barrier();
                                 }),
                 wlb::input_error);
}

TEST(LaunchInfo, ReadsOpenMpiAndSlurmEnvironments) {
    ::unsetenv("OMPI_COMM_WORLD_RANK");
    ::unsetenv("OMPI_COMM_WORLD_SIZE");
    ::unsetenv("PMIX_RANK");
    ::unsetenv("PMI_RANK");
    ::setenv("SLURM_PROCID", "3", 1);
    ::setenv("SLURM_NTASKS", "8", 1);
    auto s = wlb::runtime::detect_launch();
    EXPECT_EQ(s.launcher, "slurm");
    EXPECT_EQ(s.rank, 3);
    EXPECT_EQ(s.size, 8);
    ::setenv("SLURM_PROCID", "9", 1); // out of range: not a valid launch
    EXPECT_EQ(wlb::runtime::detect_launch().launcher, "none");
    ::unsetenv("SLURM_PROCID");
    ::unsetenv("SLURM_NTASKS");
}

} // namespace
