#include "tuner/packing/packer_state.hpp"

#include "base/error.hpp"
#include "tuner/packing/packer.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace wlb::tuner {
namespace {

[[noreturn]] void fail(const std::string& what) {
    throw input_error(fmt::format("packer state: {}", what));
}

void check_doc(const runtime::document& d, std::int64_t limit_tokens, std::string_view where) {
    if (d.tokens < 1 || d.tokens > limit_tokens)
        fail(fmt::format("{}: document {} has {} tokens, expected 1 to {}", where, d.id, d.tokens,
                         limit_tokens));
    if (d.drawn_step < 0)
        fail(fmt::format("{}: document {} has drawn_step {}, expected >= 0", where, d.id,
                         d.drawn_step));
}

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

void check_packer_state(const packer_state& s, const packing_config& config) {
    const auto policy = config.policy;
    const auto name = to_string(policy);
    const auto limit = config.context_tokens;
    const bool has_carried = policy != packing_policy::plain;
    const std::size_t queues = policy == packing_policy::wlb ? config.thresholds.size() : 0;
    if (!has_carried && !s.carried.empty())
        fail(fmt::format("{} carries no documents over, found {}", name, s.carried.size()));
    if (s.queues.size() != queues)
        fail(fmt::format("{} with {} thresholds has {} queues, found {}", name,
                         config.thresholds.size(), queues, s.queues.size()));
    if (s.pending && policy != packing_policy::plain)
        fail(fmt::format("only plain keeps a pending piece, not {}", name));
    if (!s.ready.empty() && policy != packing_policy::fixed_greedy)
        fail(fmt::format("only fixed-greedy keeps ready steps, not {}", name));
    if (s.ready.size() >= static_cast<std::size_t>(config.window))
        fail(fmt::format("{} ready steps for a window of {} (at most {})", s.ready.size(),
                         config.window, config.window - 1));

    for (std::size_t i = 0; i < s.carried.size(); ++i)
        check_doc(s.carried[i], limit, fmt::format("carried[{}]", i));
    for (std::size_t q = 0; q < s.queues.size(); ++q) {
        const auto low = config.thresholds[q];
        const auto high = q + 1 < queues ? config.thresholds[q + 1] : limit + 1;
        for (std::size_t i = 0; i < s.queues[q].size(); ++i) {
            const auto& d = s.queues[q][i];
            const auto where = fmt::format("queues[{}][{}]", q, i);
            check_doc(d, limit, where);
            if (d.tokens < low || d.tokens >= high)
                fail(fmt::format("{}: document {} of {} tokens is outside its queue [{}, {})",
                                 where, d.id, d.tokens, low, high));
        }
    }
    if (s.pending)
        check_doc(*s.pending, limit, "pending");
    for (std::size_t k = 0; k < s.ready.size(); ++k) {
        const auto& b = s.ready[k];
        if (b.replicas.size() != static_cast<std::size_t>(config.replicas))
            fail(fmt::format("ready[{}] has {} replicas, expected {}", k, b.replicas.size(),
                             config.replicas));
        for (std::size_t r = 0; r < b.replicas.size(); ++r) {
            const auto& mbs = b.replicas[r].micro_batches;
            if (mbs.size() != static_cast<std::size_t>(config.micro_batches))
                fail(fmt::format("ready[{}].replicas[{}] has {} micro-batches, expected {}", k, r,
                                 mbs.size(), config.micro_batches));
            for (std::size_t m = 0; m < mbs.size(); ++m) {
                const auto where = fmt::format("ready[{}].replicas[{}].micro_batches[{}]", k, r, m);
                for (const auto& d : mbs[m].docs)
                    check_doc(d, limit, where);
                if (mbs[m].tokens() > limit)
                    fail(fmt::format("{} holds {} tokens, over the context {}", where,
                                     mbs[m].tokens(), limit));
            }
        }
    }
}

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
