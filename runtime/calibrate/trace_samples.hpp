// Calibration samples from a captured run (`wlbtune calibrate --from-trace DIR`): a
// wlbtune.trace/1 directory that records its steps' packed and sharded batches (batches.json:
// wlbtune's own CPU and GPU runs, and simulations) gives, per (step, rank, micro-batch, pass), the
// time of each class of layer work beside the shape the batch gave that rank, exactly the samples a
// calibration probe measures (runtime/calibrate/cpu_probe.hpp names the classes):
//
//   compute     the rank's operations of one micro-batch and pass, summed by class over the
//               layers it ran and divided by their count (one layer: the attention operations
//               count them); tokens and chunks from batches.json (replica = the rank's dp
//               coordinate, CP shard = its cp coordinate)
//   collectives every instance matched over its group's members (same step, lane, name and
//               occurrence), the shortest member's time (the last to arrive waits least), bytes
//               in the cost model's convention; left out of simulated traces, whose collectives
//               hold the waiting the simulator put there
//
// The warm-up step 0 of a measured run (first touches of memory) is left out when the trace has
// later steps. A simulator's trace names its per-layer work "linear" (GEMMs and element-wise
// together): those samples are class linear.
#pragma once

#include "runtime/calibrate/rate_samples.hpp"
#include "runtime/model/model_spec.hpp"

#include <optional>
#include <string>

namespace wlb::runtime {

struct trace_sample_options {
    /// The model the run trained; nullopt: the one the manifest records ("model", written by
    /// `wlbtune run`). Throws wlb::input_error when neither says.
    std::optional<model_spec> model;
    bool keep_warmup = false; ///< keep step 0 of a measured run
};

/// Throws wlb::input_error naming the directory, the file or the step when the trace cannot be
/// read, records no batches, or its batches do not match its events.
[[nodiscard]] rate_samples samples_from_trace(const std::string& dir,
                                              const trace_sample_options& options = {});

} // namespace wlb::runtime
