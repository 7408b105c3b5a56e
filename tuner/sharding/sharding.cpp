#include "tuner/sharding/sharding.hpp"

#include "base/error.hpp"
#include "base/token_count.hpp"
#include "tuner/cost/cost_model.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <map>
#include <nlohmann/json.hpp>

namespace wlb::tuner {
namespace {

constexpr std::pair<sharding_policy, std::string_view> policy_names[] = {
    {sharding_policy::per_seq, "per-seq"},
    {sharding_policy::per_doc, "per-doc"},
    {sharding_policy::adaptive, "adaptive"},
    {sharding_policy::hybrid, "hybrid"},
};

} // namespace

std::string_view to_string(sharding_policy p) noexcept {
    for (const auto& [policy, name] : policy_names)
        if (policy == p)
            return name;
    return "unknown";
}

std::vector<std::string> sharding_policy_names() {
    std::vector<std::string> names;
    for (const auto& [policy, name] : policy_names)
        names.emplace_back(name);
    return names;
}

sharding_policy parse_sharding_policy(std::string_view text, std::string_view what) {
    for (const auto& [policy, name] : policy_names)
        if (name == text)
            return policy;
    throw input_error(fmt::format("{}: unknown sharding policy \"{}\" (expected one of {})", what,
                                  text, fmt::join(sharding_policy_names(), ", ")));
}

std::optional<std::int64_t> parse_hybrid_threshold(std::string_view text, std::string_view what) {
    if (text == "auto")
        return std::nullopt;
    return wlb::parse_token_count(text, what);
}

std::string describe_sharding(const sharding_spec& s) {
    std::string out(to_string(s.policy));
    if (s.policy == sharding_policy::hybrid)
        out += fmt::format(" (threshold {}, token imbalance <= {})",
                           s.hybrid_threshold_tokens
                               ? fmt::format("{} tokens", *s.hybrid_threshold_tokens)
                               : std::string("auto"),
                           s.hybrid_max_token_imbalance);
    return out;
}

nlohmann::json to_json(const sharding_spec& s) {
    nlohmann::json j = {{"policy", to_string(s.policy)}};
    if (s.policy == sharding_policy::hybrid) {
        if (s.hybrid_threshold_tokens)
            j["hybrid_threshold_tokens"] = *s.hybrid_threshold_tokens;
        else
            j["hybrid_threshold_tokens"] = "auto";
        j["hybrid_max_token_imbalance"] = s.hybrid_max_token_imbalance;
    }
    return j;
}

sharding_spec sharding_spec_from_json(const nlohmann::json& j, std::string_view where) {
    if (!j.is_object())
        throw input_error(where,
                          fmt::format("sharding must be an object, found {}", j.type_name()));
    auto it = j.find("policy");
    if (it == j.end() || !it->is_string())
        throw input_error(where, "sharding field \"policy\" must be a string");
    sharding_spec s;
    s.policy = parse_sharding_policy(it->get<std::string>(), fmt::format("{}.policy", where));
    if (auto t = j.find("hybrid_threshold_tokens"); t != j.end()) {
        if (t->is_string() && t->get<std::string>() == "auto")
            s.hybrid_threshold_tokens = std::nullopt;
        else if (t->is_number_integer() && t->get<std::int64_t>() > 0)
            s.hybrid_threshold_tokens = t->get<std::int64_t>();
        else
            throw input_error(where, fmt::format("sharding field \"hybrid_threshold_tokens\" must "
                                                 "be a positive integer or \"auto\", found {}",
                                                 t->dump()));
    }
    if (auto t = j.find("hybrid_max_token_imbalance"); t != j.end()) {
        if (!t->is_number() || !(t->get<double>() >= 1.0))
            throw input_error(where, fmt::format("sharding field \"hybrid_max_token_imbalance\" "
                                                 "must be a number >= 1, found {}",
                                                 t->dump()));
        s.hybrid_max_token_imbalance = t->get<double>();
    }
    return s;
}

void check_shardable(const runtime::micro_batch& mb) {
    std::map<std::int64_t, std::size_t> seen;
    for (std::size_t i = 0; i < mb.docs.size(); ++i) {
        const auto& d = mb.docs[i];
        if (d.id < 0)
            throw input_error(
                fmt::format("micro-batch document {}: id must be >= 0, found {}", i, d.id));
        if (d.tokens < 1)
            throw input_error(fmt::format("micro-batch document {} (id {}) has {} tokens, "
                                          "expected > 0",
                                          i, d.id, d.tokens));
        if (const auto [it, fresh] = seen.emplace(d.id, i); !fresh)
            throw input_error(fmt::format("micro-batch documents {} and {} have the same id {}: "
                                          "a sharder names documents by id, so ids must be unique "
                                          "in a micro-batch",
                                          it->second, i, d.id));
    }
}

void append_chunk(runtime::cp_shard& shard, const runtime::chunk& c) {
    if (c.q_tokens <= 0)
        return;
    if (!shard.chunks.empty()) {
        auto& last = shard.chunks.back();
        if (last.doc_id == c.doc_id && last.q_offset + last.q_tokens == c.q_offset) {
            last.q_tokens += c.q_tokens;
            return;
        }
    }
    shard.chunks.push_back(c);
}

bool same_chunks(const runtime::sharded_micro_batch& a,
                 const runtime::sharded_micro_batch& b) noexcept {
    if (a.ranks.size() != b.ranks.size())
        return false;
    for (std::size_t r = 0; r < a.ranks.size(); ++r) {
        const auto& x = a.ranks[r].chunks;
        const auto& y = b.ranks[r].chunks;
        if (x.size() != y.size())
            return false;
        for (std::size_t k = 0; k < x.size(); ++k)
            if (x[k].doc_id != y[k].doc_id || x[k].q_offset != y[k].q_offset ||
                x[k].q_tokens != y[k].q_tokens)
                return false;
    }
    return true;
}

std::optional<std::string> find_sharding_error(const runtime::micro_batch& mb,
                                               const runtime::sharded_micro_batch& s) {
    // Per document: the chunks' ranges, sorted, must tile [0, tokens) exactly.
    std::map<std::int64_t, std::int64_t> doc_tokens;
    for (const auto& d : mb.docs)
        if (!doc_tokens.emplace(d.id, d.tokens).second)
            return fmt::format("document id {} appears twice in the micro-batch", d.id);
    std::map<std::int64_t, std::vector<std::pair<std::int64_t, std::int64_t>>> ranges;
    for (std::size_t r = 0; r < s.ranks.size(); ++r) {
        for (const auto& c : s.ranks[r].chunks) {
            auto it = doc_tokens.find(c.doc_id);
            if (it == doc_tokens.end())
                return fmt::format("rank {} holds a chunk of unknown document {}", r, c.doc_id);
            if (c.q_tokens <= 0 || c.q_offset < 0 || c.q_offset + c.q_tokens > it->second)
                return fmt::format("rank {} holds chunk [{}, {}) of document {} of {} tokens", r,
                                   c.q_offset, c.q_offset + c.q_tokens, c.doc_id, it->second);
            ranges[c.doc_id].emplace_back(c.q_offset, c.q_offset + c.q_tokens);
        }
    }
    for (const auto& [id, tokens] : doc_tokens) {
        auto& rs = ranges[id];
        std::sort(rs.begin(), rs.end());
        std::int64_t covered = 0;
        for (const auto& [begin, end] : rs) {
            if (begin < covered)
                return fmt::format("document {}: token {} is held twice", id, begin);
            if (begin > covered)
                return fmt::format("document {}: token {} is held by no rank", id, covered);
            covered = end;
        }
        if (covered < tokens)
            return fmt::format("document {}: token {} is held by no rank", id, covered);
    }
    return std::nullopt;
}

} // namespace wlb::tuner
