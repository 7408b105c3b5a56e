// Calibration probe of the CPU backend (`wlbtune calibrate --backend cpu`): the decoder's own
// forward and backward (runtime/train/decoder_step.hpp, the code `wlbtune run` executes) over the
// probe micro-batches of runtime/calibrate/probe_design.hpp, one layer of the model at its full
// width, every operation timed by the host-timer capture (runtime/trace/step_observer.hpp) and
// grouped as the cost model counts work:
//
//   gemm          qkv proj, out proj, mlp (their GEMMs with rotary and SwiGLU inside)
//   elementwise   attn norm, mlp norm, residual
//   attention     attention fwd / bwd, with the probe's chunks
//   output_layer  output layer fwd / bwd (final norm, LM head, cross-entropy)
//
// The same names in a captured run give the same samples (runtime/calibrate/trace_samples.hpp),
// so a calibration and a trace fit measure the same thing. Collectives: under a launcher with
// several ranks, MPI all-reduce (latency), all-gather and reduce-scatter (bandwidth) over the
// world and point-to-point transfers between rank pairs; their hosts are compared, so a group on
// one host is measured as intra-node.
//
// Collective over `world`: every rank runs every probe at once (as the ranks of a run share the
// machine), one BLAS thread each, and the samples are the ranks' means. `repeats` interleaved
// passes over the probes; a sample is the median of its repeats and keeps their spread.
#pragma once

#include "runtime/calibrate/rate_samples.hpp"
#include "runtime/comm/communicator.hpp"
#include "runtime/model/model_spec.hpp"
#include "runtime/train/backend.hpp"

#include <functional>
#include <span>
#include <string>

namespace wlb::runtime {

struct probe_progress {
    std::string what; ///< "attention and layer probes", "collectives"
    int done = 0;
    int total = 0;
};

struct cpu_probe_options {
    bool quick = false; ///< the small design (tests): 512-token probes
    int repeats = 3;
    precision numbers = precision::f32;
    std::uint64_t seed = 1;
    /// Called on every rank after each unit of work.
    std::function<void(const probe_progress&)> progress;
};

/// Measures `model`'s layer on this machine's CPU (see above). Throws wlb::input_error when the
/// CPU decoder cannot run the model (runtime::decoder_config_of).
[[nodiscard]] rate_samples measure_cpu(const model_spec& model, communicator& world,
                                       const cpu_probe_options& options);

/// rate_samples::lockstep_penalty from every rank's wall seconds of the same work (the same
/// steps in the same order, each begun after a barrier): the sum over steps of the slowest rank's
/// seconds / the sum of the ranks' means, less 1. Collective; 0 for one rank or no steps.
[[nodiscard]] double lockstep_penalty(communicator& world, std::span<const double> walls);

/// Host name and processor model ("host dev-vm-3, Intel(R) Xeon(R) ..."), for provenance.
[[nodiscard]] std::string describe_host();

/// The collective samples of `world` (empty with one rank): shared by the CPU probe and any
/// backend whose collectives go through the communicator seam with host buffers.
[[nodiscard]] std::vector<rate_sample> measure_world_collectives(communicator& world, int repeats,
                                                                 bool quick);

} // namespace wlb::runtime
