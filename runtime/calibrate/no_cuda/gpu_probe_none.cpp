// The GPU probe of a build without CUDA: it says so.
#include "base/error.hpp"
#include "runtime/calibrate/gpu_probe.hpp"

namespace wlb::runtime {

rate_samples measure_gpu(const model_spec&, communicator&, const gpu_probe_options&) {
    throw runtime_failure("calibrate --backend cuda: this wlbtune was built without CUDA "
                          "(configure with -DWLB_CUDA=ON on a machine with the CUDA toolkit)");
}

bool gpu_probe_built() noexcept {
    return false;
}

} // namespace wlb::runtime
