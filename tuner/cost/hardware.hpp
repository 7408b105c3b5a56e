// Hardware description for the cost model: compute rates, the attention kernel's efficiency by
// query-chunk length, memory and network bandwidths. Presets carry the source of every number;
// custom hardware comes from JSON (and a later calibration on a real GPU replaces the tables).
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

    /// Achieved forward attention TFLOP/s for a query chunk of `query_tokens` (already padded
    /// to the tile): piecewise linear in log2(length) between the table's points, flat beyond
    /// the last, proportional to the length below the first.
    [[nodiscard]] double attention_fwd_tflops(double query_tokens) const;
};

/// h100-sxm, h200.
std::vector<std::string> hardware_preset_names();
hardware_config hardware_preset(std::string_view name);
/// A preset name or a path to a JSON file.
hardware_config load_hardware(const std::string& name_or_path);
hardware_config hardware_from_json(const nlohmann::json& j, std::string_view where);
nlohmann::json to_json(const hardware_config& h);

} // namespace wlb::tuner
