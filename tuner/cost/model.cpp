#include "tuner/cost/model.hpp"

#include "base/error.hpp"

#include <array>
#include <fmt/format.h>
#include <fstream>
#include <nlohmann/json.hpp>

namespace wlb::tuner {
namespace {

// The paper (WLB-LLM, OSDI '25) names its models by size only; where it gives no shape we use
// the public Llama-family model of that size and say so in `source`.
const std::array<model_config, 7>& presets() {
    static const std::array<model_config, 7> all = {{
        {"550m", 28, 1024, 16, 16, 4096, 32000, true,
         "assumed Llama-style shape of about 550M parameters (the paper gives only the size)"},
        {"7b", 32, 4096, 32, 32, 11008, 32000, true, "Llama-2-7B (Touvron et al. 2023, Table 1)"},
        {"30b", 60, 6656, 52, 52, 17920, 32000, true,
         "LLaMA-30B/33B shape (Touvron et al. 2023a); the paper gives only the size"},
        {"70b", 80, 8192, 64, 8, 28672, 32000, true,
         "Llama-2-70B (Touvron et al. 2023, grouped-query attention, 8 KV heads)"},
        {"llama3-8b", 32, 4096, 32, 8, 14336, 128256, true, "Llama 3 8B (Llama 3 herd, Table 3)"},
        {"llama3-70b", 80, 8192, 64, 8, 28672, 128256, true, "Llama 3 70B (Llama 3 herd, Table 3)"},
        {"llama3-405b", 126, 16384, 128, 8, 53248, 128256, true,
         "Llama 3 405B (Llama 3 herd, Table 3)"},
    }};
    return all;
}

void validate(const model_config& m, std::string_view where) {
    auto positive = [&](int v, const char* field) {
        if (v < 1)
            throw input_error(where, fmt::format("model field \"{}\" must be a positive integer, "
                                                 "got {}",
                                                 field, v));
    };
    positive(m.layers, "layers");
    positive(m.hidden, "hidden");
    positive(m.heads, "heads");
    positive(m.kv_heads, "kv_heads");
    positive(m.ffn, "ffn");
    positive(m.vocab, "vocab");
    if (m.hidden % m.heads != 0)
        throw input_error(
            where, fmt::format("model hidden {} is not a multiple of heads {}", m.hidden, m.heads));
    if (m.heads % m.kv_heads != 0)
        throw input_error(where, fmt::format("model heads {} is not a multiple of kv_heads {}",
                                             m.heads, m.kv_heads));
}

} // namespace

double model_config::layer_params() const noexcept {
    const double h = hidden;
    const double kv = static_cast<double>(kv_heads) * head_dim();
    const double attention = h * (h + 2.0 * kv) + h * h; // QKV and output projections
    const double mlp = (gated_mlp ? 3.0 : 2.0) * h * ffn;
    return attention + mlp;
}

double model_config::total_params() const noexcept {
    return layers * layer_params() + 2.0 * static_cast<double>(vocab) * hidden;
}

std::vector<std::string> model_preset_names() {
    std::vector<std::string> names;
    for (const auto& m : presets())
        names.push_back(m.name);
    return names;
}

model_config model_preset(std::string_view name) {
    for (const auto& m : presets())
        if (m.name == name)
            return m;
    throw input_error(fmt::format("unknown model \"{}\" (presets: {}; or a path to a JSON file)",
                                  name, fmt::join(model_preset_names(), ", ")));
}

model_config model_from_json(const nlohmann::json& j, std::string_view where) {
    if (!j.is_object())
        throw input_error(where, "a model must be a JSON object");
    model_config m;
    auto field = [&](const char* key, auto& out, bool required) {
        auto it = j.find(key);
        if (it == j.end()) {
            if (required)
                throw input_error(where, fmt::format("model field \"{}\" is missing", key));
            return;
        }
        try {
            it->get_to(out);
        } catch (const nlohmann::json::exception&) {
            throw input_error(where, fmt::format("model field \"{}\" has the wrong type ({})", key,
                                                 it->type_name()));
        }
    };
    field("name", m.name, false);
    field("layers", m.layers, true);
    field("hidden", m.hidden, true);
    field("heads", m.heads, true);
    m.kv_heads = m.heads;
    field("kv_heads", m.kv_heads, false);
    field("ffn", m.ffn, true);
    field("vocab", m.vocab, true);
    field("gated_mlp", m.gated_mlp, false);
    field("source", m.source, false);
    if (m.name.empty())
        m.name = std::string(where);
    validate(m, where);
    return m;
}

model_config load_model(const std::string& name_or_path) {
    for (const auto& m : presets())
        if (m.name == name_or_path)
            return m;
    std::ifstream in(name_or_path);
    if (!in)
        model_preset(name_or_path); // throws the "unknown model" message with the presets
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(in);
    } catch (const nlohmann::json::parse_error& e) {
        throw input_error(name_or_path, fmt::format("byte {}: not valid JSON", e.byte));
    }
    return model_from_json(j, name_or_path);
}

nlohmann::json to_json(const model_config& m) {
    return {{"name", m.name},   {"layers", m.layers},       {"hidden", m.hidden},
            {"heads", m.heads}, {"kv_heads", m.kv_heads},   {"ffn", m.ffn},
            {"vocab", m.vocab}, {"gated_mlp", m.gated_mlp}, {"source", m.source}};
}

} // namespace wlb::tuner
