// GPU tier: the NCCL communicator (runtime/comm/nccl_communicator.hpp) on the one GPU a test
// machine has: a one-rank NCCL world bootstrapped through the in-process fake communicator.
// Collectives (synchronous and asynchronous, f32 and bf16) give the closed-form results of one
// member, a split gives a working sub-communicator, and a transfer stalled behind a blocked stream
// is ended by the watchdog (abort, not a hang), and a split whose communicator fails its checks
// leaves no communicator registered as live. Multi-rank NCCL needs one GPU per rank (NCCL
// refuses two ranks on one device), so it runs under mpirun on a multi-GPU machine, not here.
#include "base/error.hpp"
#include "kernels/cuda_ops.hpp"
#include "runtime/comm/fake_communicator.hpp"
#include "runtime/comm/nccl_communicator.hpp"
#include "support/gpu_test.hpp"

#include <atomic>
#include <chrono>
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>
#include <thread>
#include <vector>

namespace rt = wlb::runtime;
namespace kc = wlb::kernels::cuda;

namespace {

TEST(NcclCommunicator, OneRankCollectivesSplitAndBarrier) {
    WLB_REQUIRE_GPU();
    rt::fake_world::run(1, 60.0, [](rt::communicator& boot) {
        auto nccl = rt::make_nccl_world(boot, {});
        EXPECT_EQ(nccl->size(), 1);
        EXPECT_EQ(nccl->rank(), 0);
        EXPECT_EQ(nccl->group().world_ranks, boot.group().world_ranks);

        const std::vector<float> host = {1.f, 2.f, 3.f, 4.f};
        kc::device_array<float> send(host), recv(4);
        nccl->all_gather<float>({send.data(), 4}, {recv.data(), 4});
        EXPECT_EQ(recv.download(), host) << "all_gather of one member is a copy";
        nccl->reduce_scatter<float>({send.data(), 4}, {recv.data(), 4});
        EXPECT_EQ(recv.download(), host) << "reduce_scatter of one member is a copy";
        nccl->all_reduce<float>({send.data(), 4});
        EXPECT_EQ(send.download(), host) << "all_reduce of one member keeps the data";

        // Asynchronous bf16 all-gather on the comm stream, joined into a compute stream.
        std::vector<wlb::kernels::bf16> h16 = {wlb::kernels::bf16(1.5f), wlb::kernels::bf16(-2.f)};
        kc::device_array<wlb::kernels::bf16> s16(h16), r16(2);
        kc::stream compute;
        nccl->bind_compute_stream(compute.get());
        nccl->all_gather_async(s16.data(), r16.data(), 2, rt::device_element::bf16);
        nccl->join(compute.get());
        kc::synchronize(compute.get());
        const auto got = r16.download();
        EXPECT_EQ(got[0].bits, h16[0].bits);
        EXPECT_EQ(got[1].bits, h16[1].bits);
        nccl->bind_compute_stream(nullptr);

        rt::group_desc g;
        g.kind = "cp";
        g.world_ranks = {0};
        auto sub = nccl->split(g);
        EXPECT_EQ(sub->size(), 1);
        EXPECT_EQ(sub->group().kind, "cp");
        sub->all_reduce<float>({send.data(), 4});
        EXPECT_EQ(send.download(), host);
        sub->barrier();
        nccl->barrier();
    });
}

// A split of the one-rank world into a group that names two ranks gives NCCL's one-member
// communicator, which the constructor's size check refuses: the split throws, and the refused
// communicator must not stay registered as live (it would never be destroyed, and a later abort
// would reach it); the world goes on working.
TEST(NcclCommunicator, ARefusedSplitLeavesNoLiveCommunicator) {
    WLB_REQUIRE_GPU();
    rt::fake_world::run(1, 60.0, [](rt::communicator& boot) {
        auto nccl = rt::make_nccl_world(boot, {});
        EXPECT_EQ(nccl->live_communicators(), 1u);
        rt::group_desc g;
        g.kind = "cp";
        g.world_ranks = {0, 1};
        for (int attempt = 0; attempt < 3; ++attempt)
            EXPECT_THROW((void)nccl->split(g), wlb::internal_error);
        EXPECT_EQ(nccl->live_communicators(), 1u) << "a refused split stayed registered as live";
        rt::group_desc one;
        one.kind = "tp";
        one.world_ranks = {0};
        {
            auto sub = nccl->split(one);
            EXPECT_EQ(nccl->live_communicators(), 2u);
        }
        EXPECT_EQ(nccl->live_communicators(), 1u) << "a destroyed split is no longer live";
        const std::vector<float> host = {1.f, 2.f};
        kc::device_array<float> data(host);
        nccl->all_reduce<float>({data.data(), 2});
        EXPECT_EQ(data.download(), host);
    });
}

// A host callback holds the communication stream until a flag is set 3 s later; waiting for the
// stream cannot finish within the 1 s watchdog, which aborts the NCCL communicators and ends the
// (fake) job: every rank throws runtime_failure naming the watchdog. (No NCCL kernel is queued
// behind the stall: an aborted communicator's kernel must never run.)
TEST(NcclCommunicator, WatchdogEndsAStalledCollective) {
    WLB_REQUIRE_GPU();
    std::atomic<bool> release{false};
    std::thread releaser([&] {
        std::this_thread::sleep_for(std::chrono::seconds(3));
        release = true;
    });
    try {
        rt::fake_world::run(1, 1.0, [&](rt::communicator& boot) {
            rt::nccl_options options;
            options.watchdog_seconds = 1.0;
            auto nccl = rt::make_nccl_world(boot, options);
            auto hold = [](void* flag) {
                while (!static_cast<std::atomic<bool>*>(flag)->load())
                    std::this_thread::sleep_for(std::chrono::milliseconds(1));
            };
            ASSERT_EQ(cudaLaunchHostFunc(nccl->comm_stream(), hold, &release), cudaSuccess);
            nccl->wait();
            ADD_FAILURE() << "the stalled wait returned";
        });
        ADD_FAILURE() << "the watchdog did not fire";
    } catch (const wlb::runtime_failure& e) {
        EXPECT_NE(std::string(e.what()).find("watchdog: wait on world group [0]"),
                  std::string::npos)
            << e.what();
    }
    releaser.join();
    cudaDeviceSynchronize();
    cudaGetLastError();
}

} // namespace
