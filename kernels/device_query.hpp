// Which CUDA devices this process can use. Host interface; kernels/device_query.cu implements it
// with the CUDA runtime when the build has CUDA, kernels/no_cuda/device_query_none.cpp otherwise.
// Never throws: a machine without a GPU is a normal case, described in `reason`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace wlb::kernels {

struct device_info {
    int index = 0;
    std::string name;
    int compute_major = 0;
    int compute_minor = 0;
    std::uint64_t memory_bytes = 0;
    int multiprocessors = 0;
};

struct device_report {
    bool cuda_built = false; ///< this binary was built with CUDA
    int runtime_version = 0; ///< CUDA runtime version (1000*major + 10*minor), 0 if unknown
    int driver_version = 0;  ///< CUDA driver version, 0 when no driver is installed
    std::vector<device_info> devices;
    std::string reason; ///< why there are no devices, when there are none
};

device_report query_devices();

} // namespace wlb::kernels
