// Calibration probe of the CUDA backend (`wlbtune calibrate --backend cuda`): the CUDA kernels of
// kernels/cuda_ops.hpp timed with CUDA events on this process's GPU, at the model's layer shapes
// (tp = 1) over the GPU probe design (runtime/calibrate/probe_design.hpp: 32K-token probes,
// documents of 128 .. 32K, pieces of 128 and 4096 queries, off-tile lengths, mixes):
//
//   gemm          a layer's GEMMs (QKV, output, gate, up, down; backward: data and weight
//                 gradients) through cuBLAS in bf16
//   elementwise   RMSNorm x2, rotary on Q and K, SwiGLU (forward; their backward)
//   attention     the varlen attention forward and backward over each probe's chunks
//   output_layer  the LM head GEMM and the final norm
//   collective    NCCL all-reduce, all-gather and reduce-scatter over the launcher's ranks when
//                 there are several (one GPU each); with one process there is nothing to measure
//                 and the note says the preset's values stay
//
// Defined in runtime/calibrate/cuda/ (target wlb::cuda) when the build has CUDA; a build without
// it has runtime/calibrate/no_cuda/, whose measure_gpu throws wlb::runtime_failure saying so.
// Host header: no CUDA include.
#pragma once

#include "runtime/calibrate/cpu_probe.hpp"
#include "runtime/calibrate/rate_samples.hpp"
#include "runtime/comm/communicator.hpp"
#include "runtime/model/model_spec.hpp"

#include <functional>

namespace wlb::runtime {

struct gpu_probe_options {
    bool quick = false; ///< 8K-token probes
    int repeats = 5;    ///< timed repeats after one warm-up, per shape
    int device = -1;    ///< -1: the node-local rank modulo the visible devices
    std::function<void(const probe_progress&)> progress;
};

/// Collective over `world` (every rank probes its own GPU at once). Throws wlb::runtime_failure
/// when the build has no CUDA or no device is visible, naming why.
[[nodiscard]] rate_samples measure_gpu(const model_spec& model, communicator& world,
                                       const gpu_probe_options& options);

/// Whether this build can probe a GPU (it has CUDA); the device may still be missing.
[[nodiscard]] bool gpu_probe_built() noexcept;

} // namespace wlb::runtime
