// The training backends this build has, chosen by kind: the one place that knows every
// implementation of runtime/train/backend.hpp (the CPU trainer; CUDA once it is built).
#pragma once

#include "runtime/comm/communicator.hpp"
#include "runtime/train/backend.hpp"

#include <memory>

namespace wlb::runtime {

/// Throws wlb::input_error when this build cannot run `kind` (cuda, until the [cuda-runtime]
/// issue lands), so a run can refuse before any work.
void check_backend_available(backend_kind kind);

/// The backend of `kind` over the job's world communicator (which must outlive it). Collective
/// over `world`: splits it into the layout's groups, throwing wlb::input_error before any
/// communication when the world size differs from the layout's (or the model does not split
/// over the layout).
[[nodiscard]] std::unique_ptr<training_backend> make_backend(backend_kind kind, communicator& world,
                                                             const backend_options& options);

} // namespace wlb::runtime
