// The NCCL communicator (runtime/comm/nccl_communicator.hpp) as the device step's group
// communicator (runtime/comm/device_comm.hpp), issue [cuda-run]. Host header, defined in
// runtime/comm/cuda/ (wlb::cuda) in CUDA builds only: its one caller is the CUDA backend
// (runtime/train/cuda/), whose stand-in in a build without CUDA reports the build instead.
//
// Collectives are queued on the group's stream after the device's queued work, and the device's
// later work is queued after them (nccl_communicator::join): the host does not wait, so compute
// queued before a collective overlaps the previous one. Point-to-point transfers keep the NCCL
// communicator's rules (staged sends, posted with the next receive or collective; a receive
// blocks the host under the watchdog). wait() polls every queued transfer under the watchdog.
#pragma once

#include "runtime/comm/device_comm.hpp"
#include "runtime/comm/nccl_communicator.hpp"

#include <memory>

namespace wlb::runtime {

/// `comm` and `device` must outlive the result; binds `comm`'s compute stream to the device's.
[[nodiscard]] std::unique_ptr<device_comm> make_nccl_device_comm(nccl_communicator& comm,
                                                                 compute_device& device);

} // namespace wlb::runtime
