// The host reference of the compute device seam (runtime/device/compute_device.hpp): every
// floating type is stored as float (bf16 too: no rounding to bf16 happens here), the kernels are
// the CPU kernels of kernels/ops.hpp, everything runs at once on the calling thread, and marks
// read the steady clock. The unit tests run the whole device step on it and compare with the
// CPU backend.
#pragma once

#include "runtime/device/compute_device.hpp"

#include <memory>

namespace wlb::runtime {

[[nodiscard]] std::unique_ptr<compute_device> make_host_device();

} // namespace wlb::runtime
