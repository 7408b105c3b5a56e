#include "runtime/model/model_spec.hpp"

#include "base/error.hpp"
#include "base/json_file.hpp"

#include <array>
#include <cmath>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

namespace wlb::runtime {
namespace {

constexpr double default_norm_eps = 1e-5;
constexpr double default_rope_base = 10000.0;

model_spec shape(const char* name, int layers, int hidden, int heads, int kv_heads, int ffn,
                 int vocab, const char* source) {
    model_spec m;
    m.name = name;
    m.layers = layers;
    m.hidden = hidden;
    m.heads = heads;
    m.kv_heads = kv_heads;
    m.ffn = ffn;
    m.vocab = vocab;
    m.source = source;
    return m;
}

// The paper (WLB-LLM, OSDI '25) names its models by size only; where it gives no shape we use
// the public Llama-family model of that size and say so in `source`.
const std::array<model_spec, 9>& presets() {
    static const std::array<model_spec, 9> all = {
        shape("tiny", 4, 32, 4, 4, 64, 128,
              "CPU-sized decoder for tests and CI (seconds per step on a laptop)"),
        shape("small", 4, 256, 4, 4, 512, 1024,
              "CPU-sized decoder for benchmarks: attention over 4K-token documents outweighs "
              "the GEMMs as at 128K on a 7B model"),
        shape("550m", 28, 1024, 16, 16, 4096, 32000,
              "assumed Llama-style shape of about 550M parameters (the paper gives only the "
              "size)"),
        shape("7b", 32, 4096, 32, 32, 11008, 32000, "Llama-2-7B (Touvron et al. 2023, Table 1)"),
        shape("30b", 60, 6656, 52, 52, 17920, 32000,
              "LLaMA-30B/33B shape (Touvron et al. 2023a); the paper gives only the size"),
        shape("70b", 80, 8192, 64, 8, 28672, 32000,
              "Llama-2-70B (Touvron et al. 2023, grouped-query attention, 8 KV heads)"),
        shape("llama3-8b", 32, 4096, 32, 8, 14336, 128256, "Llama 3 8B (Llama 3 herd, Table 3)"),
        shape("llama3-70b", 80, 8192, 64, 8, 28672, 128256, "Llama 3 70B (Llama 3 herd, Table 3)"),
        shape("llama3-405b", 126, 16384, 128, 8, 53248, 128256,
              "Llama 3 405B (Llama 3 herd, Table 3)"),
    };
    return all;
}

void validate(const model_spec& m, std::string_view where) {
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
    if (!(m.norm_eps > 0.0) || !std::isfinite(m.norm_eps))
        throw input_error(where, fmt::format("model field \"norm_eps\" must be a positive number, "
                                             "got {}",
                                             m.norm_eps));
    if (!(m.rope_base > 1.0) || !std::isfinite(m.rope_base))
        throw input_error(where, fmt::format("model field \"rope_base\" must be a number above 1, "
                                             "got {}",
                                             m.rope_base));
}

} // namespace

double model_spec::layer_params() const noexcept {
    const double h = hidden;
    const double kv = static_cast<double>(kv_heads) * head_dim();
    const double attention = h * (h + 2.0 * kv) + h * h; // QKV and output projections
    const double mlp = (gated_mlp ? 3.0 : 2.0) * h * ffn;
    return attention + mlp;
}

double model_spec::total_params() const noexcept {
    return layers * layer_params() + 2.0 * static_cast<double>(vocab) * hidden;
}

std::vector<std::string> model_preset_names() {
    std::vector<std::string> names;
    for (const auto& m : presets())
        names.push_back(m.name);
    return names;
}

model_spec model_preset(std::string_view name) {
    for (const auto& m : presets())
        if (m.name == name)
            return m;
    throw input_error(fmt::format("unknown model \"{}\" (presets: {}; or a path to a JSON file)",
                                  name, fmt::join(model_preset_names(), ", ")));
}

model_spec model_from_json(const nlohmann::json& j, std::string_view where) {
    if (!j.is_object())
        throw input_error(where, "a model must be a JSON object");
    static constexpr std::array<std::string_view, 11> known = {
        "name",  "layers",    "hidden", "heads",    "kv_heads", "ffn",
        "vocab", "gated_mlp", "source", "norm_eps", "rope_base"};
    for (const auto& [key, _] : j.items())
        if (std::find(known.begin(), known.end(), key) == known.end())
            throw input_error(where, fmt::format("unknown model field \"{}\" (expected {})", key,
                                                 fmt::join(known, ", ")));
    model_spec m;
    auto field = [&](const char* key, auto& out, bool required) {
        auto it = j.find(key);
        if (it == j.end()) {
            if (required)
                throw input_error(where, fmt::format("model field \"{}\" is missing", key));
            return;
        }
        using T = std::decay_t<decltype(out)>;
        const bool ok = std::is_same_v<T, std::string> ? it->is_string()
                        : std::is_same_v<T, bool>      ? it->is_boolean()
                        : std::is_floating_point_v<T>  ? it->is_number()
                                                       : it->is_number_integer();
        if (!ok)
            throw input_error(where, fmt::format("model field \"{}\" has the wrong type ({}: {})",
                                                 key, it->type_name(), it->dump()));
        if constexpr (std::is_same_v<T, int>) {
            const auto v = it->get<std::int64_t>();
            if (v < 1 || v > (std::int64_t{1} << 30))
                throw input_error(where, fmt::format("model field \"{}\" must be in 1 .. 2^30, "
                                                     "got {}",
                                                     key, it->dump()));
            out = static_cast<int>(v);
        } else {
            it->get_to(out);
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
    field("norm_eps", m.norm_eps, false);
    field("rope_base", m.rope_base, false);
    if (m.name.empty())
        m.name = std::string(where);
    validate(m, where);
    return m;
}

model_spec load_model(const std::string& name_or_path) {
    const auto file = preset_or_json_file(name_or_path, "model", model_preset_names());
    if (!file)
        return model_preset(name_or_path);
    return model_from_json(*file, name_or_path);
}

nlohmann::json to_json(const model_spec& m) {
    nlohmann::json j = {{"name", m.name},   {"layers", m.layers},       {"hidden", m.hidden},
                        {"heads", m.heads}, {"kv_heads", m.kv_heads},   {"ffn", m.ffn},
                        {"vocab", m.vocab}, {"gated_mlp", m.gated_mlp}, {"source", m.source}};
    if (m.norm_eps != default_norm_eps)
        j["norm_eps"] = m.norm_eps;
    if (m.rope_base != default_rope_base)
        j["rope_base"] = m.rope_base;
    return j;
}

} // namespace wlb::runtime
