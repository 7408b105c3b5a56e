// `wlbtune calibrate` as a library call: measure what the cost model needs on this machine
// (runtime/calibrate: the CPU probe over the decoder's own operations, or the GPU probe over the
// CUDA kernels) or read it from a captured run's trace, fit the hardware description to it
// (tuner/cost/rate_fit.hpp) and return it as the hardware file `--hardware FILE` takes
// (schema wlbtune.hardware/1, with its provenance), beside the preset it replaces.
#pragma once

#include "runtime/calibrate/cpu_probe.hpp"
#include "runtime/calibrate/rate_samples.hpp"
#include "runtime/comm/communicator.hpp"
#include "runtime/train/backend.hpp"
#include "tuner/cost/hardware.hpp"
#include "tuner/cost/rate_fit.hpp"

#include <functional>
#include <nlohmann/json.hpp>
#include <string>

namespace wlb::tuner {

struct calibrate_request {
    std::string backend = "cpu"; ///< cpu or cuda
    std::string model = "small"; ///< a preset or a model JSON file
    /// The preset the result replaces (its unmeasured fields are kept); empty: cpu-dev-vm for
    /// cpu, h200 or h100-sxm by the GPU's name for cuda, the trace's own for --from-trace.
    std::string base;
    std::string from_trace;   ///< fit from this trace directory instead of measuring
    bool model_given = false; ///< --model was given (a trace's manifest names its own otherwise)
    int repeats = 3;
    bool quick = false; ///< the small probe design (tests)
    runtime::precision numbers = runtime::precision::f32;
    std::function<void(const runtime::probe_progress&)> progress;
};

struct calibrate_outcome {
    runtime::rate_samples samples;
    hardware_config base;         ///< the preset replaced
    hardware_fit fit;             ///< fit.hardware: the result
    double measure_seconds = 0.0; ///< wall time of the measurement or the trace's reading
    /// The hardware file: the fitted hardware with "schema" and "provenance" (machine, date,
    /// command, source, model, ranks, repeats).
    nlohmann::json hardware_file;
};

/// Measures (collective over `world` for the probes; unused with from_trace) and fits. Throws
/// wlb::input_error for a bad model, base or trace, wlb::runtime_failure when the backend cannot
/// run here (no CUDA, no device).
calibrate_outcome calibrate_job(const calibrate_request& request, runtime::communicator* world);

} // namespace wlb::tuner
