// GPU tier: runs everywhere, skips with the reason when there is no CUDA device.
#include "kernels/device_query.hpp"

#include <gtest/gtest.h>

namespace {

TEST(DeviceQuery, DevicesAreDescribedOrAReasonIsGiven) {
    auto report = wlb::kernels::query_devices();
    if (report.devices.empty()) {
        EXPECT_FALSE(report.reason.empty());
        GTEST_SKIP() << report.reason;
    }
    for (const auto& d : report.devices) {
        EXPECT_FALSE(d.name.empty());
        EXPECT_GT(d.memory_bytes, 0u);
        EXPECT_GT(d.multiprocessors, 0);
        EXPECT_GE(d.compute_major, 5);
    }
}

} // namespace
