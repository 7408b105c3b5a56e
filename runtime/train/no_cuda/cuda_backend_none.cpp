// The cuda backend's entry points in a build without CUDA (runtime/train/cuda_backend.hpp).
#include "base/error.hpp"
#include "runtime/device/cuda_device.hpp"
#include "runtime/train/cuda_backend.hpp"

namespace wlb::runtime {

void check_cuda_backend(const device_options& /*options*/) {
    throw runtime_failure("--backend cuda: " + cuda_device_unavailable_reason());
}

std::unique_ptr<training_backend> make_cuda_backend(communicator& /*world*/,
                                                    const backend_options& options,
                                                    std::unique_ptr<capture_ranges> /*capture*/) {
    check_cuda_backend(options.device);
    return nullptr;
}

std::unique_ptr<emulated_job> make_cuda_emulated_job(const backend_options& options,
                                                     emulated_comm_model /*model*/,
                                                     const capture_factory& /*make_capture*/) {
    check_cuda_backend(options.device);
    return nullptr;
}

} // namespace wlb::runtime
