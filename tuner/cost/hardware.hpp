// Hardware description for the cost model: compute rates, the attention kernel's efficiency by
// query-chunk length, memory and network bandwidths. Presets carry the source of every number;
// custom hardware comes from JSON, and `wlbtune calibrate` measures one on the machine it runs on
// (tuner/cost/rate_fit.hpp) and writes it with its provenance (schema "wlbtune.hardware/1",
// docs/formats.md). Fields added after the presets (the backward table, the per-token attention
// terms, the output layer's rate) are optional: absent, the cost model behaves as before.
#pragma once

#include <map>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace wlb::tuner {

struct rate_point {
    int query_tokens = 0; ///< query-chunk length the kernel gets
    double tflops = 0.0;  ///< achieved bf16 TFLOP/s for that length
};

struct hardware_config {
    std::string name;
    double peak_bf16_tflops = 0.0;         ///< dense peak
    double gemm_tflops = 0.0;              ///< achieved on the large GEMMs of a transformer layer
    std::vector<rate_point> attention_fwd; ///< ascending query_tokens; forward kernel
    double attention_bwd_rate_ratio = 0.0; ///< backward kernel's achieved rate / forward's
    int attention_tile = 128;              ///< query tile of the kernel; chunks are padded to it
    double hbm_gbytes_per_s = 0.0;         ///< memory bandwidth, for element-wise work
    double nvlink_gbytes_per_s = 0.0;      ///< per-GPU collective bus bandwidth inside a node
    double nvlink_latency_us = 0.0;        ///< per collective step inside a node
    double network_gbytes_per_s = 0.0;     ///< per-GPU bus bandwidth between nodes
    double network_latency_us = 0.0;
    int gpus_per_node = 8;
    double memory_gbytes = 0.0;                 ///< device memory
    std::map<std::string, std::string> sources; ///< field -> where the number comes from

    // ---- optional (calibrated hardware; the presets leave them empty or 0) ----
    /// Backward kernel's achieved TFLOP/s by query-chunk length (FLOPs by the cost model's
    /// convention: 2.5x the forward's). Empty: the forward table x attention_bwd_rate_ratio.
    std::vector<rate_point> attention_bwd;
    /// Per query token (padded to the tile), extra causal pairs the kernel works as if it had
    /// them, charged at the table's long-chunk rate (its last point): the work a kernel does per
    /// query row whatever the chunk's length (softmax statistics, the masked part of a diagonal
    /// block, per-block setup). Short documents cost more per pair because of it. 0: none.
    double attention_fwd_token_pairs = 0.0;
    double attention_bwd_token_pairs = 0.0;
    /// Achieved rate of the output layer (final norm, LM head GEMM, loss); 0: gemm_tflops.
    double output_layer_tflops = 0.0;
    /// The backward's achieved rate / the forward's, for the layer GEMMs and for the output layer
    /// (whose forward holds the loss's softmax over the vocabulary): the backward takes
    /// gemm_bwd_flop_ratio (2) x the forward's time / this. 0: 1 (as the FLOPs say).
    double gemm_bwd_rate_ratio = 0.0;
    double output_layer_bwd_rate_ratio = 0.0;
    /// What ranks that synchronize every layer (a TP or CP group) lose to their differences: the
    /// slowest of `lockstep_ranks` ranks running the same work in lockstep took this fraction
    /// longer than their mean (calibrate measures it over its ranks; 0: nothing lost). The cost
    /// model scales it to a group of g ranks by the expected maximum of g normal deviates
    /// (cost_model::lockstep_factor).
    double lockstep_penalty = 0.0;
    int lockstep_ranks = 0;
    /// The two ratios with 0 read as 1.
    [[nodiscard]] double gemm_bwd_rate() const noexcept {
        return gemm_bwd_rate_ratio > 0.0 ? gemm_bwd_rate_ratio : 1.0;
    }
    [[nodiscard]] double output_layer_bwd_rate() const noexcept {
        return output_layer_bwd_rate_ratio > 0.0 ? output_layer_bwd_rate_ratio : 1.0;
    }
    /// Calibrated fields: (max - min) / median of the repeats behind them (median over samples).
    std::map<std::string, double> spread;
    /// Where a calibrated file comes from: "machine", "date", "command", "source", "model", ...
    std::map<std::string, std::string> provenance;

    /// Achieved forward attention TFLOP/s for a query chunk of `query_tokens` (already padded
    /// to the tile): piecewise linear in log2(length) between the table's points, flat beyond
    /// the last, proportional to the length below the first.
    [[nodiscard]] double attention_fwd_tflops(double query_tokens) const;
    /// The backward's rate (its own table when there is one, else the forward's x the ratio).
    [[nodiscard]] double attention_bwd_tflops(double query_tokens) const;
    /// Whether the attention terms go beyond the presets' form (a backward table or a per-token
    /// term): the cost model then costs backward chunk by chunk with them.
    [[nodiscard]] bool has_attention_terms() const noexcept {
        return !attention_bwd.empty() || attention_fwd_token_pairs > 0.0 ||
               attention_bwd_token_pairs > 0.0;
    }
};

/// The rate of `table` at `query_tokens` as hardware_config::attention_fwd_tflops interpolates.
[[nodiscard]] double interpolate_rate(const std::vector<rate_point>& table, double query_tokens);

inline constexpr std::string_view hardware_schema = "wlbtune.hardware/1";

/// h100-sxm, h200.
std::vector<std::string> hardware_preset_names();
hardware_config hardware_preset(std::string_view name);
/// A preset name or a path to a JSON file.
hardware_config load_hardware(const std::string& name_or_path);
/// Parses and validates a hardware description: {"base": PRESET, ...} overrides a preset's
/// fields; without "base" every required field must be there. An unknown field, a missing
/// required one, a wrong type or a value out of range is wlb::input_error naming `where` and the
/// field.
hardware_config hardware_from_json(const nlohmann::json& j, std::string_view where);
/// Every field; the optional ones only when set. No "schema": the hardware is also embedded in
/// tuned configs and cost models; a hardware file adds it (calibrate).
nlohmann::json to_json(const hardware_config& h);

} // namespace wlb::tuner
