#include "tuner/spec/tuned_config.hpp"

#include "base/error.hpp"
#include "base/json_file.hpp"

#include <fmt/format.h>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace wlb::tuner {
namespace {

// Field access with errors that name the file and the JSON path.
class reader {
public:
    reader(const nlohmann::json& root, std::string_view where) : m_root(root), m_where(where) {}

    const nlohmann::json& at(const nlohmann::json& j, std::string_view key,
                             std::string_view path) const {
        if (!j.is_object())
            fail(path, "is not an object");
        auto it = j.find(std::string(key));
        if (it == j.end())
            fail(fmt::format("{}.{}", path, key), "is missing");
        return *it;
    }
    std::string string(const nlohmann::json& j, std::string_view key, std::string_view path) const {
        const auto& v = at(j, key, path);
        if (!v.is_string())
            fail(fmt::format("{}.{}", path, key),
                 fmt::format("must be a string, found {}", v.dump()));
        return v.get<std::string>();
    }
    std::int64_t integer(const nlohmann::json& j, std::string_view key,
                         std::string_view path) const {
        const auto& v = at(j, key, path);
        if (!v.is_number_integer())
            fail(fmt::format("{}.{}", path, key),
                 fmt::format("must be an integer, found {}", v.dump()));
        return v.get<std::int64_t>();
    }
    [[noreturn]] void fail(std::string_view path, std::string_view what) const {
        throw input_error(m_where, fmt::format("{}: {}", path, what));
    }
    [[nodiscard]] std::string where(std::string_view path) const {
        return fmt::format("{}: {}", m_where, path);
    }

private:
    const nlohmann::json& m_root;
    std::string m_where;
};

} // namespace

tuned_config tuned_config_from_json(const nlohmann::json& j, std::string_view where) {
    const reader rd(j, where);
    if (!j.is_object())
        rd.fail("$", "a tuned config must be a JSON object");
    const auto schema = rd.string(j, "schema", "$");
    if (schema != config_schema)
        rd.fail("$.schema", fmt::format("expected \"{}\", found \"{}\"", config_schema, schema));
    tuned_config c;
    const auto& layout = rd.at(j, "layout", "$");
    c.layout_spec = rd.string(layout, "spec", "$.layout");
    c.layout_order = rd.string(layout, "order", "$.layout");
    c.context_tokens = rd.integer(j, "context_tokens", "$");
    if (c.context_tokens < 1)
        rd.fail("$.context_tokens", "must be positive");
    c.model = runtime::model_from_json(rd.at(j, "model", "$"), rd.where("$.model"));
    c.hardware = hardware_from_json(rd.at(j, "hardware", "$"), rd.where("$.hardware"));
    const auto& data = rd.at(j, "data", "$");
    c.data.spec = rd.string(data, "spec", "$.data");
    c.data.context_policy = rd.string(data, "context_policy", "$.data");
    if (auto it = data.find("description"); it != data.end() && it->is_string())
        c.data.description = it->get<std::string>();
    if (auto it = data.find("shuffle_seed"); it != data.end() && !it->is_null()) {
        if (!it->is_number_unsigned())
            rd.fail("$.data.shuffle_seed", "must be a non-negative integer or null");
        c.data.shuffle_seed = it->get<std::uint64_t>();
    }
    if (data.contains("documents"))
        c.data.documents = rd.integer(data, "documents", "$.data");
    if (data.contains("tokens"))
        c.data.tokens = rd.integer(data, "tokens", "$.data");
    if (auto it = j.find("inputs"); it != j.end() && it->is_array())
        for (const auto& in : *it)
            if (in.is_object() && in.contains("path"))
                c.data.inputs.push_back({in.value("path", ""), in.value("bytes", std::uint64_t{0}),
                                         in.value("hash", "")});
    c.packing = packing_config_from_json(rd.at(j, "packing", "$"), rd.where("$.packing"));
    if (c.packing.context_tokens != c.context_tokens)
        rd.fail("$.packing.context_tokens",
                fmt::format("{} differs from $.context_tokens {}", c.packing.context_tokens,
                            c.context_tokens));
    c.sharding = sharding_spec_from_json(rd.at(j, "sharding", "$"), rd.where("$.sharding"));
    if (auto it = j.find("schedule"); it != j.end()) {
        c.schedule = rd.string(*it, "schedule", "$.schedule");
        c.partition = rd.string(*it, "partition", "$.schedule");
    }
    if (auto it = j.find("evaluated"); it != j.end()) {
        c.evaluated_steps = rd.integer(*it, "steps", "$.evaluated");
        if (c.evaluated_steps < 1)
            rd.fail("$.evaluated.steps",
                    fmt::format("must be a positive step count, found {}", c.evaluated_steps));
    }
    return c;
}

tuned_config read_tuned_config(const std::string& path) {
    return tuned_config_from_json(read_json_file(path), path);
}

} // namespace wlb::tuner
