// The host core's training backend: the CPU trainer. The cuda backend sits at the CUDA edge
// (runtime/train/cuda_backend.hpp: make_cuda_backend, check_cuda_backend), which the host
// core's tests do not link; tuner/job/run_execute.hpp chooses between the two.
#pragma once

#include "runtime/comm/communicator.hpp"
#include "runtime/train/backend.hpp"

#include <memory>

namespace wlb::runtime {

/// The host core's part of the check that `kind` can run: nothing for cpu; for cuda, call
/// check_cuda_backend (runtime/train/cuda_backend.hpp) as well, which knows the devices.
void check_backend_available(backend_kind kind);

/// The CPU backend over the job's world communicator (which must outlive it); `kind` cuda is
/// wlb::internal_error (make_cuda_backend makes it). Collective over `world`: splits it into
/// the layout's groups, throwing wlb::input_error before any communication when the world size
/// differs from the layout's (or the model does not split over the layout).
[[nodiscard]] std::unique_ptr<training_backend> make_backend(backend_kind kind, communicator& world,
                                                             const backend_options& options);

} // namespace wlb::runtime
