// The NCCL communicator's entry points in a build without CUDA (runtime/nccl_communicator.hpp).
#include "runtime/error.hpp"
#include "runtime/nccl_communicator.hpp"

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
