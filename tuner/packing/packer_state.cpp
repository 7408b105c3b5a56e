#include "tuner/packing/packer_state.hpp"

#include "base/error.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace wlb::tuner {
namespace {

nlohmann::json doc_json(const runtime::document& d) {
    return nlohmann::json::array({d.id, d.tokens, d.drawn_step});
}

nlohmann::json docs_json(const std::vector<runtime::document>& docs) {
    auto j = nlohmann::json::array();
    for (const auto& d : docs)
        j.push_back(doc_json(d));
    return j;
}

runtime::document parse_doc(const nlohmann::json& j, std::string_view where,
                            const std::string& path) {
    if (!j.is_array() || j.size() != 3 || !j[0].is_number_integer() || !j[1].is_number_integer() ||
        !j[2].is_number_integer())
        throw input_error(where, fmt::format("{}: expected [id, tokens, drawn_step] (integers), "
                                             "found {}",
                                             path, j.dump()));
    return {j[0].get<std::int64_t>(), j[1].get<std::int64_t>(), j[2].get<std::int64_t>()};
}

std::vector<runtime::document> parse_docs(const nlohmann::json& j, std::string_view where,
                                          const std::string& path) {
    if (!j.is_array())
        throw input_error(where, fmt::format("{}: expected an array of documents", path));
    std::vector<runtime::document> out;
    out.reserve(j.size());
    for (std::size_t i = 0; i < j.size(); ++i)
        out.push_back(parse_doc(j[i], where, fmt::format("{}[{}]", path, i)));
    return out;
}

const nlohmann::json& field(const nlohmann::json& j, const char* key, std::string_view where) {
    auto it = j.find(key);
    if (it == j.end())
        throw input_error(where, fmt::format("$.{} is missing", key));
    return *it;
}

} // namespace

nlohmann::json to_json(const packer_state& s) {
    auto queues = nlohmann::json::array();
    for (const auto& q : s.queues)
        queues.push_back(docs_json(q));
    auto ready = nlohmann::json::array();
    for (const auto& b : s.ready) {
        auto replicas = nlohmann::json::array();
        for (const auto& r : b.replicas) {
            auto mbs = nlohmann::json::array();
            for (const auto& mb : r.micro_batches)
                mbs.push_back({{"docs", docs_json(mb.docs)}});
            replicas.push_back({{"micro_batches", std::move(mbs)}});
        }
        ready.push_back({{"step", b.step}, {"replicas", std::move(replicas)}});
    }
    return {{"carried", docs_json(s.carried)},
            {"queues", std::move(queues)},
            {"ready", std::move(ready)},
            {"pending", s.pending ? doc_json(*s.pending) : nlohmann::json(nullptr)},
            {"ended", s.ended}};
}

packer_state packer_state_from_json(const nlohmann::json& j, std::string_view where) {
    if (!j.is_object())
        throw input_error(where, "$: a packer state must be a JSON object");
    packer_state s;
    s.carried = parse_docs(field(j, "carried", where), where, "$.carried");
    const auto& queues = field(j, "queues", where);
    if (!queues.is_array())
        throw input_error(where, "$.queues: expected an array of queues");
    for (std::size_t q = 0; q < queues.size(); ++q)
        s.queues.push_back(parse_docs(queues[q], where, fmt::format("$.queues[{}]", q)));
    const auto& ready = field(j, "ready", where);
    if (!ready.is_array())
        throw input_error(where, "$.ready: expected an array of steps");
    for (std::size_t k = 0; k < ready.size(); ++k) {
        const auto path = fmt::format("$.ready[{}]", k);
        const auto& b = ready[k];
        if (!b.is_object() || !b.contains("step") || !b["step"].is_number_integer() ||
            !b.contains("replicas") || !b["replicas"].is_array())
            throw input_error(where, fmt::format("{}: expected {{\"step\": N, \"replicas\": "
                                                 "[...]}}",
                                                 path));
        runtime::global_batch batch;
        batch.step = b["step"].get<std::int64_t>();
        for (std::size_t r = 0; r < b["replicas"].size(); ++r) {
            const auto rpath = fmt::format("{}.replicas[{}]", path, r);
            const auto& rj = b["replicas"][r];
            if (!rj.is_object() || !rj.contains("micro_batches") || !rj["micro_batches"].is_array())
                throw input_error(where,
                                  fmt::format("{}: expected {{\"micro_batches\": [...]}}", rpath));
            runtime::replica_batch replica;
            for (std::size_t m = 0; m < rj["micro_batches"].size(); ++m) {
                const auto mpath = fmt::format("{}.micro_batches[{}]", rpath, m);
                const auto& mj = rj["micro_batches"][m];
                if (!mj.is_object() || !mj.contains("docs"))
                    throw input_error(where,
                                      fmt::format("{}: expected {{\"docs\": [...]}}", mpath));
                replica.micro_batches.push_back({parse_docs(mj["docs"], where, mpath + ".docs")});
            }
            batch.replicas.push_back(std::move(replica));
        }
        s.ready.push_back(std::move(batch));
    }
    const auto& pending = field(j, "pending", where);
    if (!pending.is_null())
        s.pending = parse_doc(pending, where, "$.pending");
    const auto& ended = field(j, "ended", where);
    if (!ended.is_boolean())
        throw input_error(where,
                          fmt::format("$.ended: expected true or false, found {}", ended.dump()));
    s.ended = ended.get<bool>();
    return s;
}

} // namespace wlb::tuner
