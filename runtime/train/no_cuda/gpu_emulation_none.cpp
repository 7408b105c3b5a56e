// The single-GPU emulation's entry points in a build without CUDA
// (runtime/train/gpu_emulation.hpp).
#include "base/error.hpp"
#include "runtime/train/gpu_emulation.hpp"

namespace wlb::runtime {

namespace {

[[noreturn]] void no_cuda() {
    throw runtime_failure("this wlbtune was built without CUDA, so it cannot run the single-GPU "
                          "emulation; rebuild with the CUDA toolkit (cmake -DWLB_CUDA=ON)");
}

} // namespace

emulation_result emulate_cp_group(const sharded_micro_batch& /*batch*/,
                                  const emulated_layer& /*layer*/,
                                  const emulation_options& /*options*/) {
    no_cuda();
}

emulation_result emulate_micro_batches(const std::vector<micro_batch>& /*micro_batches*/,
                                       const emulated_layer& /*layer*/,
                                       const emulation_options& /*options*/) {
    no_cuda();
}

} // namespace wlb::runtime
