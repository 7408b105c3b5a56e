// The hardware description fitted to measured samples (runtime/calibrate/rate_samples.hpp): what
// `wlbtune calibrate` writes, from probes run on this machine or from a captured run's trace.
// Every field is fitted in the cost model's own terms (tuner/cost/cost_model.hpp), so the cost
// model predicts each sample with the fitted hardware and the residuals below are its errors:
//
//   gemm_tflops          sum of the GEMM samples' FLOPs (2 x tokens x layer weights / tp,
//                        backward 2x) / their seconds: the forward samples' where both passes
//                        were measured, the backward's rate then as gemm_bwd_rate_ratio
//   hbm_gbytes_per_s     sum of the cost model's element-wise bytes (24 forward, 48 backward
//                        hidden-sized passes per token) / the element-wise samples' seconds
//   (linear only)        where a source does not split GEMMs from element-wise work (the
//                        simulator's traces), the base hardware's split is kept and both scaled
//   output_layer_tflops  LM head FLOPs (2 x tokens x hidden x vocab / tp, backward 2x) / seconds,
//                        the passes apart as for the GEMMs (output_layer_bwd_rate_ratio)
//   attention            forward and backward separately: a rate table by (tile-padded) query-chunk
//                        length plus a per-token term (hardware_config::attention_fwd_token_pairs),
//                        least squares on relative errors (Levenberg-Marquardt on log rates,
//                        started from the one-rate fit). Knots at powers of 4 over the padded
//                        chunk lengths the samples hold; a knot no sample reaches keeps its
//                        neighbour's rate. The one-rate form is kept when the table improves the
//                        rms error by less than half a point (fewer parameters, same fit), and
//                        both, with the presets' form (a rate table alone), are reported
//   collectives          latency and bandwidth of the ring model (cost_model::collective_seconds,
//                        p2p_seconds) by least squares on relative errors, intra-node samples to
//                        the nvlink fields, inter-node ones to the network fields
//   lockstep_penalty     as measured (rate_samples::lockstep_penalty), where several ranks ran
//                        the probes at once
// Fields no sample measures stay at the base hardware's values, with a note saying so.
#pragma once

#include "runtime/calibrate/rate_samples.hpp"
#include "tuner/cost/hardware.hpp"

#include <optional>
#include <string>
#include <vector>

namespace wlb::tuner {

/// How well one class of samples is predicted with the fitted hardware.
struct class_fit {
    std::string what; ///< "gemm", "attention fwd", "collectives intra-node", ...
    int samples = 0;
    double rms_error = 0.0;   ///< of predicted / measured - 1
    double worst_error = 0.0; ///< signed, the largest in magnitude
    std::string worst_label;
    double median_spread = 0.0; ///< of the samples' repeats
};

/// One form of the attention term and its fit (the chosen one and the alternatives).
struct attention_form_fit {
    std::string form; ///< "rate table alone (the presets' form)", "one rate + per-token term", ...
    double rms_fwd = 0.0;
    double rms_bwd = 0.0;
    bool chosen = false;
};

struct sample_residual {
    std::string what; ///< the class (and pass)
    std::string label;
    double measured_seconds = 0.0;
    double predicted_seconds = 0.0;
};

struct hardware_fit {
    hardware_config hardware;
    std::vector<class_fit> classes;
    std::vector<attention_form_fit> attention_forms;
    std::vector<sample_residual> residuals;
    std::vector<std::string> notes; ///< fields left at the base, and why
};

struct fit_options {
    /// The attention tile of the fitted hardware (chunks are padded to it); nullopt: the base's.
    std::optional<int> attention_tile;
    std::string name = "calibrated"; ///< the fitted hardware's name
};

/// Fits `base` to the samples (see above). Throws wlb::input_error when there is nothing to fit
/// (no compute sample).
[[nodiscard]] hardware_fit fit_hardware(const runtime::rate_samples& samples,
                                        const hardware_config& base,
                                        const fit_options& options = {});

/// The cost model's prediction of one compute or collective sample on `h` (what the residuals
/// compare): per layer for compute classes, per operation for collectives.
[[nodiscard]] double predict_sample(const runtime::rate_sample& s, const runtime::rate_samples& set,
                                    const hardware_config& h);

} // namespace wlb::tuner
