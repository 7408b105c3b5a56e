// Device query: the first CUDA translation unit, so every CUDA build proves the nvcc path.
// Variants: one, host-only CUDA runtime calls (no kernel launch); needs the CUDA runtime and,
// to report devices, a driver.
#include "kernels/device_query.hpp"

#include <cuda_runtime_api.h>

namespace wlb::kernels {

device_report query_devices() {
    device_report report;
    report.cuda_built = true;
    cudaRuntimeGetVersion(&report.runtime_version);
    cudaDriverGetVersion(&report.driver_version);
    int count = 0;
    cudaError_t status = cudaGetDeviceCount(&count);
    if (status != cudaSuccess) {
        report.reason = std::string("no CUDA device: ") + cudaGetErrorString(status);
        cudaGetLastError(); // clear the sticky-free error so later calls start clean
        return report;
    }
    if (count == 0) {
        report.reason = "no CUDA device: the driver reports 0 devices";
        return report;
    }
    for (int i = 0; i < count; ++i) {
        cudaDeviceProp prop{};
        if (cudaGetDeviceProperties(&prop, i) != cudaSuccess)
            continue;
        device_info d;
        d.index = i;
        d.name = prop.name;
        d.compute_major = prop.major;
        d.compute_minor = prop.minor;
        d.memory_bytes = prop.totalGlobalMem;
        d.multiprocessors = prop.multiProcessorCount;
        report.devices.push_back(d);
    }
    return report;
}

} // namespace wlb::kernels
