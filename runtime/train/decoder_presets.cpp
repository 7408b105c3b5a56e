// The decoder's built-in shapes, its JSON form, and its layer cut over model chunks.
#include "base/error.hpp"
#include "runtime/train/decoder.hpp"

#include <fstream>
#include <nlohmann/json.hpp>

namespace wlb::runtime {
namespace {

decoder_config shape(const char* name, std::int64_t vocab, std::int64_t hidden, std::int64_t heads,
                     std::int64_t ffn, std::int64_t layers) {
    decoder_config c;
    c.name = name;
    c.vocab = vocab;
    c.hidden = hidden;
    c.heads = heads;
    c.ffn = ffn;
    c.layers = layers;
    return c;
}

} // namespace

std::vector<std::string> decoder_preset_names() {
    return {"tiny", "small"};
}

decoder_config decoder_preset(std::string_view name) {
    if (name == "tiny")
        return shape("tiny", 128, 32, 4, 64, 4);
    if (name == "small")
        return shape("small", 1024, 256, 4, 512, 4);
    throw input_error(
        fmt::format("unknown model \"{}\" (presets: tiny, small; or a path to a JSON file with "
                    "vocab, hidden, heads, ffn, layers)",
                    name));
}

decoder_config load_decoder_config(const std::string& name_or_path) {
    for (const auto& preset : decoder_preset_names())
        if (name_or_path == preset)
            return decoder_preset(preset);
    std::ifstream in(name_or_path);
    if (!in)
        (void)decoder_preset(name_or_path); // throws with the list of presets
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(in);
    } catch (const nlohmann::json::parse_error& e) {
        throw input_error(name_or_path, fmt::format("byte {}: not valid JSON", e.byte));
    }
    if (!j.is_object())
        throw input_error(name_or_path, "a model must be a JSON object");
    decoder_config c;
    c.name = name_or_path;
    for (const auto& [key, value] : j.items()) {
        auto integer = [&](std::int64_t& out) {
            if (!value.is_number_integer())
                throw input_error(name_or_path, fmt::format("\"{}\" must be an integer, found {}",
                                                            key, value.dump()));
            out = value.get<std::int64_t>();
        };
        auto number = [&](double& out) {
            if (!value.is_number())
                throw input_error(name_or_path, fmt::format("\"{}\" must be a number, found {}",
                                                            key, value.dump()));
            out = value.get<double>();
        };
        if (key == "name") {
            if (!value.is_string())
                throw input_error(name_or_path, "\"name\" must be a string");
            c.name = value.get<std::string>();
        } else if (key == "vocab")
            integer(c.vocab);
        else if (key == "hidden")
            integer(c.hidden);
        else if (key == "heads")
            integer(c.heads);
        else if (key == "ffn")
            integer(c.ffn);
        else if (key == "layers")
            integer(c.layers);
        else if (key == "norm_eps")
            number(c.norm_eps);
        else if (key == "rope_base")
            number(c.rope_base);
        else
            throw input_error(name_or_path,
                              fmt::format("unknown field \"{}\" (expected name, vocab, hidden, "
                                          "heads, ffn, layers, norm_eps, rope_base)",
                                          key));
    }
    for (const char* key : {"vocab", "hidden", "heads", "ffn", "layers"})
        if (!j.contains(key))
            throw input_error(name_or_path, fmt::format("missing \"{}\"", key));
    if (!(c.norm_eps > 0) || !(c.rope_base > 1))
        throw input_error(name_or_path, "norm_eps must be positive and rope_base above 1");
    try {
        c.validate(1);
    } catch (const input_error& e) {
        throw input_error(name_or_path, e.what());
    }
    return c;
}

nlohmann::json to_json(const decoder_config& c) {
    return {{"name", c.name},
            {"vocab", c.vocab},
            {"hidden", c.hidden},
            {"heads", c.heads},
            {"ffn", c.ffn},
            {"layers", c.layers},
            {"norm_eps", c.norm_eps},
            {"rope_base", c.rope_base},
            {"parameters", decoder_parameter_count(c)}};
}

std::int64_t decoder_parameter_count(const decoder_config& c) {
    const std::int64_t h = c.hidden;
    const std::int64_t layer = 2 * h + 4 * h * h + 3 * h * c.ffn;
    return 2 * c.vocab * h + h + c.layers * layer;
}

std::vector<int> decoder_chunk_layers(std::int64_t layers, int chunks) {
    WLB_EXPECTS(chunks >= 1 && layers >= chunks, "{} layers in {} chunks", layers, chunks);
    std::vector<int> out;
    for (int c = 0; c < chunks; ++c)
        out.push_back(static_cast<int>(layers * (c + 1) / chunks - layers * c / chunks));
    return out;
}

} // namespace wlb::runtime
