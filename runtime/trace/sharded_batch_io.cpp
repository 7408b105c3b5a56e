#include "runtime/trace/sharded_batch_io.hpp"

#include "base/atomic_file.hpp"
#include "base/error.hpp"
#include "base/json_file.hpp"

#include <fmt/format.h>
#include <fstream>
#include <nlohmann/json.hpp>

namespace wlb::runtime {
namespace {

const nlohmann::json& array_at(const nlohmann::json& j, const std::string& path,
                               const std::string& file) {
    if (!j.is_array())
        throw input_error(file,
                          fmt::format("{}: expected an array, found {}", path, j.type_name()));
    return j;
}

} // namespace

std::vector<sharded_step> read_sharded_batch(const std::string& file) {
    const auto j = read_json_file(file);
    if (!j.is_object() || j.value("schema", "") != sharded_batch_schema)
        throw input_error(
            file, fmt::format("expected an object with \"schema\": \"{}\"", sharded_batch_schema));
    if (!j.contains("steps"))
        throw input_error(file, "no \"steps\"");
    std::vector<sharded_step> steps;
    const auto& js = array_at(j["steps"], "steps", file);
    for (std::size_t s = 0; s < js.size(); ++s) {
        const std::string sp = fmt::format("steps[{}]", s);
        if (!js[s].is_object() || !js[s].contains("replicas"))
            throw input_error(file, sp + ": expected an object with \"replicas\"");
        sharded_step step;
        if (js[s].contains("step") && !js[s]["step"].is_number_integer())
            throw input_error(file, sp + ".step: expected an integer step id");
        step.step = js[s].value("step", static_cast<std::int64_t>(s));
        const auto& reps = array_at(js[s]["replicas"], sp + ".replicas", file);
        for (std::size_t d = 0; d < reps.size(); ++d) {
            const std::string dp = fmt::format("{}.replicas[{}]", sp, d);
            auto& rep = step.replicas.emplace_back();
            const auto& mbs = array_at(reps[d], dp, file);
            for (std::size_t m = 0; m < mbs.size(); ++m) {
                const std::string mp = fmt::format("{}[{}]", dp, m);
                auto& mb = rep.emplace_back();
                const auto& ranks = array_at(mbs[m], mp, file);
                for (std::size_t c = 0; c < ranks.size(); ++c) {
                    const std::string cp = fmt::format("{}[{}]", mp, c);
                    auto& shard = mb.ranks.emplace_back();
                    const auto& chunks = array_at(ranks[c], cp, file);
                    for (std::size_t k = 0; k < chunks.size(); ++k) {
                        const auto& ch = chunks[k];
                        const bool ok =
                            ch.is_array() && ch.size() == 3 && ch[0].is_number_integer() &&
                            ch[1].is_number_integer() && ch[2].is_number_integer() &&
                            ch[1].get<std::int64_t>() >= 0 && ch[2].get<std::int64_t>() > 0;
                        if (!ok)
                            throw input_error(
                                file, fmt::format("{}[{}]: expected [doc_id, q_offset, q_tokens] "
                                                  "with q_offset >= 0 and q_tokens > 0, found {}",
                                                  cp, k, ch.dump()));
                        shard.chunks.push_back({ch[0].get<std::int64_t>(),
                                                ch[1].get<std::int64_t>(),
                                                ch[2].get<std::int64_t>()});
                    }
                }
            }
        }
        steps.push_back(std::move(step));
    }
    if (steps.empty())
        throw input_error(file, "steps: no step to simulate");
    return steps;
}

nlohmann::json sharded_batch_json(const std::vector<sharded_step>& steps,
                                  const nlohmann::json* header) {
    nlohmann::json j = header && header->is_object() ? *header : nlohmann::json::object();
    j["schema"] = sharded_batch_schema;
    auto& js = j["steps"] = nlohmann::json::array();
    for (const auto& s : steps) {
        auto replicas = nlohmann::json::array();
        for (const auto& rep : s.replicas) {
            auto mbs = nlohmann::json::array();
            for (const auto& mb : rep) {
                auto ranks = nlohmann::json::array();
                for (const auto& shard : mb.ranks) {
                    auto chunks = nlohmann::json::array();
                    for (const auto& c : shard.chunks)
                        chunks.push_back({c.doc_id, c.q_offset, c.q_tokens});
                    ranks.push_back(std::move(chunks));
                }
                mbs.push_back(std::move(ranks));
            }
            replicas.push_back(std::move(mbs));
        }
        js.push_back({{"step", s.step}, {"replicas", std::move(replicas)}});
    }
    return j;
}

void write_sharded_batch(const std::string& path, const std::vector<sharded_step>& steps,
                         const nlohmann::json* header) {
    write_file_atomic(path, sharded_batch_json(steps, header).dump() + "\n");
}

} // namespace wlb::runtime
