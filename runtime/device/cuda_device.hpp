// The CUDA implementation of the compute device seam (runtime/device/compute_device.hpp), issue
// [cuda-run]. Host header: defined in runtime/device/cuda/ (target wlb::cuda) when the build has
// CUDA, and by runtime/device/no_cuda/ otherwise, which reports the build.
//
// One object per rank: its own non-blocking stream and cuBLAS handle on `device`, stream-ordered
// allocation from the device's memory pool (freed memory stays cached in the pool, so the step's
// per-micro-batch buffers cost no cudaMalloc after the first step), CUDA events for marks, the
// kernels of kernels/cuda_ops.hpp (bf16 activations and weights, fp32 accumulation, fp32
// master weights and gradients, cuBLAS GEMMs with fp32 accumulation).
#pragma once

#include "runtime/device/attention_choice.hpp"
#include "runtime/device/compute_device.hpp"

#include <memory>
#include <string>

namespace wlb::runtime {

struct cuda_device_options {
    int device = 0; ///< CUDA ordinal
    attention_choice attention = attention_choice::automatic;
};

/// Empty when this build and process can run the device step on a CUDA device; otherwise why not
/// (a build without CUDA, no driver, no device), naming what is missing.
[[nodiscard]] std::string cuda_device_unavailable_reason();

/// Number of CUDA devices this process sees (0 without any, or in a build without CUDA).
[[nodiscard]] int cuda_device_count() noexcept;

/// Throws wlb::runtime_failure (cuda_device_unavailable_reason) without a device.
[[nodiscard]] std::unique_ptr<compute_device> make_cuda_device(const cuda_device_options& options);

} // namespace wlb::runtime
