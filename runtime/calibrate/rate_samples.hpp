// What a calibration measures (`wlbtune calibrate`, design.md section 2: the cost model's inputs):
// timed work of known shape, one sample each, with no interpretation. Two sources produce them:
// probe steps run on this machine (runtime/calibrate/cpu_probe.hpp, gpu_probe.hpp) and a captured
// run that recorded its batches (runtime/calibrate/trace_samples.hpp). The tuner's cost room fits
// the hardware description to them (tuner/cost/rate_fit.hpp); runtime/ holds only the
// measurements, so neither room has to know the other's types.
//
// Units: seconds of one transformer layer on one rank (a probe or a trace sums a micro-batch's
// layers and divides by their count), tokens, bytes. A sample's shape is the rank's share: 1/tp
// of the model's heads and columns (rate_samples::tp).
#pragma once

#include "runtime/model/model_spec.hpp"
#include "runtime/parallel/batch.hpp"

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace wlb::runtime {

/// What a sample timed, by the cost model's terms (tuner/cost/cost_model.hpp):
///   gemm          a layer's GEMM operations (QKV, output, MLP projections) over `tokens`
///   elementwise   a layer's element-wise operations (norms, residual adds, K/V layout)
///   linear        both together, where the source does not split them (the simulator's trace)
///   attention     the attention kernel over `chunks` (forward or backward)
///   output_layer  final norm, LM head and loss over `tokens`
///   collective    a collective over `group_size` ranks of `bytes` (cost-model convention: the
///                 whole gathered or reduced buffer per rank), or a point-to-point transfer
enum class rate_class : std::uint8_t {
    gemm,
    elementwise,
    linear,
    attention,
    output_layer,
    collective
};
[[nodiscard]] std::string_view to_string(rate_class c) noexcept;

enum class collective_op : std::uint8_t { all_reduce, all_gather, reduce_scatter, p2p };
[[nodiscard]] std::string_view to_string(collective_op op) noexcept;

struct rate_sample {
    rate_class what = rate_class::gemm;
    bool backward = false; ///< the backward pass (compute classes)
    std::string label;     ///< where it came from: "documents of 256 tokens", "step 3 rank 1 mb 0"
    double seconds = 0.0;  ///< per layer (compute) or per operation (collective); a median
    /// (max - min) / median of the repeats behind `seconds` (0 for a single observation).
    double spread = 0.0;
    int repeats = 1;
    std::int64_t tokens = 0;   ///< compute classes: tokens the rank held
    std::vector<chunk> chunks; ///< attention: the rank's chunks (doc_id unused)
    // collective
    collective_op op = collective_op::all_reduce;
    int group_size = 0;
    double bytes = 0.0;
    bool intra_node = true; ///< every member on one host (or one NVLink domain)
};

struct rate_samples {
    std::string source; ///< "cpu probe", "cuda probe", "trace DIR"
    model_spec model;   ///< the model whose layer shapes ran
    int tp = 1;         ///< the samples' ranks held 1/tp of the heads and columns
    int bytes_per_element = 4;
    int ranks = 1;       ///< processes that measured at once (their samples are averaged)
    std::string machine; ///< what ran them: host name, CPU or GPU model
    /// Over the probe steps every rank ran at once on the same work, after a barrier: the mean
    /// of the slowest rank's seconds / the mean of the ranks' seconds, less 1 (what a step that
    /// synchronizes them loses to their differences). Measured over `lockstep_ranks` ranks;
    /// 0 ranks: not measured (one process, or a trace).
    double lockstep_penalty = 0.0;
    int lockstep_ranks = 0;
    std::vector<rate_sample> samples;
    std::vector<std::string> notes; ///< what was not measured, and why
};

nlohmann::json to_json(const rate_sample& s);
nlohmann::json to_json(const rate_samples& s);

/// (max - min) / median of `seconds` (which it sorts), and the median. Empty: {0, 0}.
struct repeat_summary {
    double median = 0.0;
    double spread = 0.0;
};
[[nodiscard]] repeat_summary summarize_repeats(std::vector<double> seconds);

} // namespace wlb::runtime
