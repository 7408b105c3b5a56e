// The cuda training backend (issue [cuda-run]): the device decoder step
// (runtime/train/device_decoder.hpp) on CUDA devices. Host header: defined in runtime/train/cuda/
// (wlb::cuda) when the build has CUDA, and by runtime/train/no_cuda/ otherwise, where every entry
// point reports the build (wlb::runtime_failure, exit code 4).
//
//   real      one process and one GPU per rank (the launcher's node-local rank picks the
//             device), NCCL communicators bootstrapped through the host world communicator (MPI)
//             and split into the layout's TP/CP/PP/DP groups, each on its own stream.
//   emulated  every rank of the layout in this process on one GPU (runtime/comm/emulated_world),
//             each rank its own stream and cuBLAS handle on the shared device.
#pragma once

#include "runtime/comm/communicator.hpp"
#include "runtime/comm/emulated_world.hpp"
#include "runtime/trace/capture_ranges.hpp"
#include "runtime/train/backend.hpp"
#include "runtime/train/device_backend.hpp"

#include <memory>

namespace wlb::runtime {

/// Throws wlb::runtime_failure naming what is missing (a build without CUDA, no driver, no
/// device) when the cuda backend cannot run here; call it before any work.
void check_cuda_backend(const device_options& options);

/// The real backend over `world` (collective; world.size() ranks, one per GPU). `capture` (may
/// be null) gets this rank's ranges and streams.
[[nodiscard]] std::unique_ptr<training_backend>
make_cuda_backend(communicator& world, const backend_options& options,
                  std::unique_ptr<capture_ranges> capture = nullptr);

/// The emulated job on CUDA device options.device (0 when -1).
[[nodiscard]] std::unique_ptr<emulated_job>
make_cuda_emulated_job(const backend_options& options, emulated_comm_model model = {},
                       const capture_factory& make_capture = {});

} // namespace wlb::runtime
