// The CUDA device's entry points in a build without CUDA (runtime/device/cuda_device.hpp).
#include "base/error.hpp"
#include "runtime/device/cuda_device.hpp"

namespace wlb::runtime {

std::string cuda_device_unavailable_reason() {
    return "this wlbtune was built without CUDA, so it has no CUDA device to run on; rebuild with "
           "the CUDA toolkit (cmake -DWLB_CUDA=ON)";
}

int cuda_device_count() noexcept {
    return 0;
}

std::unique_ptr<compute_device> make_cuda_device(const cuda_device_options& /*options*/) {
    throw runtime_failure(cuda_device_unavailable_reason());
}

} // namespace wlb::runtime
