// The NCCL communicator's entry points in a build without CUDA
// (runtime/comm/nccl_communicator.hpp).
#include "base/error.hpp"
#include "runtime/comm/nccl_communicator.hpp"

namespace wlb::runtime {

std::unique_ptr<nccl_communicator> make_nccl_world(communicator& /*bootstrap*/,
                                                   const nccl_options& /*options*/) {
    throw runtime_failure("this wlbtune was built without CUDA, so it has no NCCL communicator; "
                          "rebuild with the CUDA toolkit (cmake -DWLB_CUDA=ON)");
}

bool nccl_available() noexcept {
    return false;
}

} // namespace wlb::runtime
