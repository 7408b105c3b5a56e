// The one registry of model shapes (design.md section 4, "Work"): every command reads a model
// here, whether the cost model predicts it (tune, simulate, pack, shard) or an executor trains
// it (run: runtime/train/decoder.hpp builds the CPU decoder from it). Presets are data; a custom
// model is a JSON file with the same fields.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace wlb::runtime {

/// A decoder-only transformer (Llama family: RMSNorm, rotary, grouped-query attention, SwiGLU).
struct model_spec {
    std::string name;
    int layers = 0;
    int hidden = 0;
    int heads = 0;
    int kv_heads = 0;
    int ffn = 0; ///< MLP inner size
    int vocab = 0;
    bool gated_mlp = true; ///< SwiGLU: three hidden x ffn matrices instead of two
    std::string source;    ///< where the shape comes from
    double norm_eps = 1e-5;
    double rope_base = 10000.0;

    [[nodiscard]] int head_dim() const noexcept { return heads > 0 ? hidden / heads : 0; }
    /// Parameters of one transformer layer (weights only, no norms).
    [[nodiscard]] double layer_params() const noexcept;
    /// All parameters: layers plus input embedding and output layer (untied).
    [[nodiscard]] double total_params() const noexcept;
};

/// Names of the built-in presets: tiny and small (CPU-sized, for `wlbtune run` on CPUs, tests and
/// benchmarks), then 550m, 7b, 30b, 70b, llama3-8b, llama3-70b, llama3-405b.
std::vector<std::string> model_preset_names();
/// A preset by name; throws wlb::input_error listing the known names.
model_spec model_preset(std::string_view name);
/// A preset name or a path to a JSON file with the fields of model_spec.
model_spec load_model(const std::string& name_or_path);
/// Parses and validates; `where` names the file for errors ("x.json"). Required: layers, hidden,
/// heads, ffn, vocab; kv_heads defaults to heads; an unknown field is an error.
model_spec model_from_json(const nlohmann::json& j, std::string_view where);
/// Every field; norm_eps and rope_base only when they differ from their defaults (1e-5, 10000).
nlohmann::json to_json(const model_spec& m);

} // namespace wlb::runtime
