#include "tuner/packing/packer.hpp"

#include "base/error.hpp"
#include "base/token_count.hpp"
#include "tuner/cost/cost_model.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

namespace wlb::tuner {
namespace {

struct policy_name {
    packing_policy policy;
    std::string_view name;
};
constexpr std::array<policy_name, 6> policy_names = {{
    {packing_policy::plain, "plain"},
    {packing_policy::fixed_greedy, "fixed-greedy"},
    {packing_policy::varlen, "varlen"},
    {packing_policy::wlb, "wlb"},
    {packing_policy::ffd, "ffd"},
    {packing_policy::plain_whole, "plain-whole"},
}};

[[noreturn]] void state_fail(const std::string& what) {
    throw input_error(fmt::format("packer state: {}", what));
}

void check_state_doc(const runtime::document& d, std::int64_t limit_tokens,
                     std::string_view where) {
    if (d.tokens < 1 || d.tokens > limit_tokens)
        state_fail(fmt::format("{}: document {} has {} tokens, expected 1 to {}", where, d.id,
                               d.tokens, limit_tokens));
    if (d.drawn_step < 0)
        state_fail(fmt::format("{}: document {} has drawn_step {}, expected >= 0", where, d.id,
                               d.drawn_step));
}

bool variable_length(packing_policy p) {
    return p == packing_policy::varlen || p == packing_policy::wlb;
}

} // namespace

std::string_view to_string(packing_policy p) noexcept {
    for (const auto& n : policy_names)
        if (n.policy == p)
            return n.name;
    return "unknown";
}

std::vector<std::string> packing_policy_names() {
    std::vector<std::string> names;
    for (const auto& n : policy_names)
        names.emplace_back(n.name);
    return names;
}

packing_policy parse_packing_policy(std::string_view text) {
    for (const auto& n : policy_names)
        if (n.name == text)
            return n.policy;
    throw input_error(fmt::format("unknown packing policy \"{}\" (expected one of: {})", text,
                                  fmt::join(packing_policy_names(), ", ")));
}

std::int64_t packing_config::micro_batch_limit() const noexcept {
    if (variable_length(policy) && smax_tokens > 0)
        return smax_tokens;
    return context_tokens;
}

void validate(const packing_config& c) {
    if (c.context_tokens < 1)
        throw input_error(
            fmt::format("packing: context_tokens must be positive, found {}", c.context_tokens));
    if (c.replicas < 1)
        throw input_error(fmt::format("packing: replicas must be >= 1, found {}", c.replicas));
    if (c.micro_batches < 1)
        throw input_error(
            fmt::format("packing: micro_batches must be >= 1, found {}", c.micro_batches));
    if (c.replicas > max_replicas)
        throw input_error(fmt::format("packing: replicas must be at most {}, found {}",
                                      max_replicas, c.replicas));
    if (c.micro_batches > max_micro_batches)
        throw input_error(fmt::format("packing: micro_batches must be at most {} per replica, "
                                      "found {}",
                                      max_micro_batches, c.micro_batches));
    if (c.window > 0 &&
        static_cast<std::int64_t>(c.window) * c.replicas * c.micro_batches > max_window_bins)
        throw input_error(fmt::format("packing: window {} x {} micro-batches per step exceeds {} "
                                      "micro-batches in one window",
                                      c.window, c.step_micro_batches(), max_window_bins));
    if (c.thresholds.size() > static_cast<std::size_t>(max_queues))
        throw input_error(fmt::format("packing: at most {} queue thresholds, found {}", max_queues,
                                      c.thresholds.size()));
    if (c.smax_tokens != 0 && c.smax_tokens < c.context_tokens)
        throw input_error(fmt::format("packing: smax_tokens {} is below the context {} (S_max must "
                                      "hold a whole context-length document)",
                                      c.smax_tokens, c.context_tokens));
    if (c.window < 1)
        throw input_error(fmt::format("packing: window must be >= 1, found {}", c.window));
    if (c.max_delay_steps < 0)
        throw input_error(
            fmt::format("packing: max_delay_steps must be >= 0, found {}", c.max_delay_steps));
    if (c.max_delay_steps > 0 && c.policy != packing_policy::wlb)
        throw input_error(fmt::format("packing: max_delay_steps bounds the wlb queues' wait; "
                                      "policy {} has none",
                                      to_string(c.policy)));
    if (c.budget_tokens < 0)
        throw input_error(
            fmt::format("packing: step_tokens must be positive, found {}", c.budget_tokens));
    if (c.budget_tokens > 0) {
        const auto product = static_cast<std::int64_t>(c.step_micro_batches()) * c.context_tokens;
        if (!variable_length(c.policy) && c.budget_tokens != product)
            throw input_error(fmt::format("packing: step_tokens {} differs from replicas x "
                                          "micro_batches x context = {}; only varlen and wlb "
                                          "take another step budget",
                                          c.budget_tokens, product));
        const auto room = static_cast<std::int64_t>(c.step_micro_batches()) * c.micro_batch_limit();
        if (c.budget_tokens > room)
            throw input_error(fmt::format("packing: step_tokens {} exceed what {} micro-batches "
                                          "of at most {} tokens hold ({})",
                                          c.budget_tokens, c.step_micro_batches(),
                                          c.micro_batch_limit(), room));
    }
    for (std::size_t i = 0; i < c.thresholds.size(); ++i) {
        if (c.thresholds[i] < 1)
            throw input_error(fmt::format("packing: threshold {} must be positive, found {}", i + 1,
                                          c.thresholds[i]));
        if (i > 0 && c.thresholds[i] <= c.thresholds[i - 1])
            throw input_error(fmt::format("packing: thresholds must increase, found {}",
                                          fmt::join(c.thresholds, ",")));
        if (c.thresholds[i] > c.context_tokens)
            throw input_error(fmt::format("packing: threshold {} is above the context {}: no "
                                          "document could reach its queue",
                                          c.thresholds[i], c.context_tokens));
    }
}

nlohmann::json to_json(const packing_config& c) {
    nlohmann::json j = {{"policy", to_string(c.policy)},
                        {"context_tokens", c.context_tokens},
                        {"replicas", c.replicas},
                        {"micro_batches", c.micro_batches},
                        {"micro_batch_limit", c.micro_batch_limit()}};
    if (variable_length(c.policy))
        j["smax_tokens"] = c.micro_batch_limit();
    if (c.policy == packing_policy::wlb)
        j["thresholds"] = c.thresholds;
    if (c.policy == packing_policy::fixed_greedy)
        j["window"] = c.window;
    if (c.budget_tokens > 0)
        j["step_tokens"] = c.budget_tokens;
    if (c.max_delay_steps > 0)
        j["max_delay_steps"] = c.max_delay_steps;
    return j;
}

packing_config packing_config_from_json(const nlohmann::json& j, std::string_view where) {
    if (!j.is_object())
        throw input_error(where, "\"packing\" must be an object");
    auto integer = [&](const char* key, bool required, std::int64_t fallback) -> std::int64_t {
        auto it = j.find(key);
        if (it == j.end()) {
            if (required)
                throw input_error(where, fmt::format("packing.{} is missing", key));
            return fallback;
        }
        if (!it->is_number_integer())
            throw input_error(
                where, fmt::format("packing.{} must be an integer, found {}", key, it->dump()));
        return it->get<std::int64_t>();
    };
    packing_config c;
    auto p = j.find("policy");
    if (p == j.end() || !p->is_string())
        throw input_error(where, "packing.policy must be a string");
    try {
        c.policy = parse_packing_policy(p->get<std::string>());
    } catch (const input_error& e) {
        throw input_error(where, e.what());
    }
    c.context_tokens = integer("context_tokens", true, 0);
    // Counts are range-checked before they narrow to int, so that 2^40 is not read as 0.
    auto count = [&](const char* key, bool required, std::int64_t most) -> int {
        const auto v = integer(key, required, 1);
        if (v < 1 || v > most)
            throw input_error(
                where, fmt::format("packing.{} must be between 1 and {}, found {}", key, most, v));
        return static_cast<int>(v);
    };
    c.replicas = count("replicas", true, max_replicas);
    c.micro_batches = count("micro_batches", true, max_micro_batches);
    c.smax_tokens = integer("smax_tokens", false, 0);
    c.window = count("window", false, max_window_bins);
    c.budget_tokens = integer("step_tokens", false, 0);
    c.max_delay_steps = integer("max_delay_steps", false, 0);
    if (auto t = j.find("thresholds"); t != j.end()) {
        if (!t->is_array())
            throw input_error(where, "packing.thresholds must be an array of integers");
        for (const auto& v : *t) {
            if (!v.is_number_integer())
                throw input_error(where, fmt::format("packing.thresholds: expected an integer, "
                                                     "found {}",
                                                     v.dump()));
            c.thresholds.push_back(v.get<std::int64_t>());
        }
    }
    try {
        validate(c);
    } catch (const input_error& e) {
        throw input_error(where, e.what());
    }
    return c;
}

std::int64_t parse_smax(std::string_view text, std::int64_t context_tokens) {
    if (text.empty() || text == "0")
        return context_tokens;
    if (text.back() == 'x' || text.back() == 'X') {
        const std::string number(text.substr(0, text.size() - 1));
        char* end = nullptr;
        const double factor = std::strtod(number.c_str(), &end);
        if (number.empty() || end != number.c_str() + number.size() || !(factor >= 1.0) ||
            factor > 64.0)
            throw input_error(fmt::format("--smax \"{}\": expected a multiple of the context "
                                          "between 1x and 64x (e.g. 1.5x) or a token count",
                                          text));
        return static_cast<std::int64_t>(factor * static_cast<double>(context_tokens));
    }
    const auto tokens = wlb::parse_token_count(text, "--smax");
    if (tokens < context_tokens)
        throw input_error(fmt::format("--smax {} is below the context {}: S_max must hold a "
                                      "whole context-length document",
                                      tokens, context_tokens));
    return tokens;
}

std::vector<std::int64_t> parse_thresholds(std::string_view text) {
    std::vector<std::int64_t> out;
    std::size_t pos = 0;
    while (pos <= text.size()) {
        auto comma = text.find(',', pos);
        if (comma == std::string_view::npos)
            comma = text.size();
        out.push_back(wlb::parse_token_count(text.substr(pos, comma - pos),
                                             fmt::format("--thresholds item {}", out.size() + 1)));
        pos = comma + 1;
    }
    for (std::size_t i = 1; i < out.size(); ++i)
        if (out[i] <= out[i - 1])
            throw input_error(fmt::format("--thresholds \"{}\": thresholds must increase", text));
    return out;
}

std::vector<std::int64_t> default_thresholds(int queues, std::int64_t context_tokens) {
    const auto c = context_tokens;
    switch (queues) {
    case 0:
        return {};
    case 1:
        return {c / 4};
    case 2:
        return {c * 3 / 16, c / 2};
    case 3:
        return {c / 8, c / 4, c / 2};
    default:
        break;
    }
    if (queues < 0)
        throw input_error(fmt::format("--queues must be >= 0, found {}", queues));
    std::vector<std::int64_t> out;
    for (int i = 0; i < queues; ++i) {
        const double f = std::exp2(-3.0 + 3.0 * i / queues); // C/8 .. below C
        const auto t =
            std::max<std::int64_t>(1, static_cast<std::int64_t>(f * static_cast<double>(c)));
        if (out.empty() || t > out.back())
            out.push_back(t);
    }
    return out;
}

void check_packer_state(const packer_state& s, const packing_config& config) {
    const auto policy = config.policy;
    const auto name = to_string(policy);
    const auto limit = config.context_tokens;
    const bool keeps_pending =
        policy == packing_policy::plain || policy == packing_policy::plain_whole;
    const bool has_carried = !keeps_pending;
    const std::size_t queues = policy == packing_policy::wlb ? config.thresholds.size() : 0;
    if (!has_carried && !s.carried.empty())
        state_fail(fmt::format("{} carries no documents over, found {}", name, s.carried.size()));
    if (s.queues.size() != queues)
        state_fail(fmt::format("{} with {} thresholds has {} queues, found {}", name,
                               config.thresholds.size(), queues, s.queues.size()));
    if (s.pending && !keeps_pending)
        state_fail(fmt::format("only plain and plain-whole keep a pending document, not {}", name));
    if (!s.ready.empty() && policy != packing_policy::fixed_greedy)
        state_fail(fmt::format("only fixed-greedy keeps ready steps, not {}", name));
    if (s.ready.size() >= static_cast<std::size_t>(config.window))
        state_fail(fmt::format("{} ready steps for a window of {} (at most {})", s.ready.size(),
                               config.window, config.window - 1));

    for (std::size_t i = 0; i < s.carried.size(); ++i)
        check_state_doc(s.carried[i], limit, fmt::format("carried[{}]", i));
    for (std::size_t q = 0; q < s.queues.size(); ++q) {
        const auto low = config.thresholds[q];
        const auto high = q + 1 < queues ? config.thresholds[q + 1] : limit + 1;
        for (std::size_t i = 0; i < s.queues[q].size(); ++i) {
            const auto& d = s.queues[q][i];
            const auto where = fmt::format("queues[{}][{}]", q, i);
            check_state_doc(d, limit, where);
            if (d.tokens < low || d.tokens >= high)
                state_fail(fmt::format("{}: document {} of {} tokens is outside its queue [{}, {})",
                                       where, d.id, d.tokens, low, high));
        }
    }
    if (s.pending)
        check_state_doc(*s.pending, limit, "pending");
    for (std::size_t k = 0; k < s.ready.size(); ++k) {
        const auto& b = s.ready[k];
        if (b.replicas.size() != static_cast<std::size_t>(config.replicas))
            state_fail(fmt::format("ready[{}] has {} replicas, expected {}", k, b.replicas.size(),
                                   config.replicas));
        for (std::size_t r = 0; r < b.replicas.size(); ++r) {
            const auto& mbs = b.replicas[r].micro_batches;
            if (mbs.size() != static_cast<std::size_t>(config.micro_batches))
                state_fail(fmt::format("ready[{}].replicas[{}] has {} micro-batches, expected {}",
                                       k, r, mbs.size(), config.micro_batches));
            for (std::size_t m = 0; m < mbs.size(); ++m) {
                const auto where = fmt::format("ready[{}].replicas[{}].micro_batches[{}]", k, r, m);
                for (const auto& d : mbs[m].docs)
                    check_state_doc(d, limit, where);
                if (mbs[m].tokens() > limit)
                    state_fail(fmt::format("{} holds {} tokens, over the context {}", where,
                                           mbs[m].tokens(), limit));
            }
        }
    }
}

std::unique_ptr<packer> make_packer(const packing_config& config, const cost_model& costs) {
    validate(config);
    switch (config.policy) {
    case packing_policy::plain:
        return make_plain_packer(config);
    case packing_policy::fixed_greedy:
        return make_fixed_greedy_packer(config, costs);
    case packing_policy::varlen:
        return make_varlen_packer(config, costs);
    case packing_policy::wlb:
        return make_wlb_packer(config, costs);
    case packing_policy::ffd:
        return make_ffd_packer(config);
    case packing_policy::plain_whole:
        return make_plain_whole_packer(config);
    }
    throw internal_error("make_packer: unknown policy");
}

} // namespace wlb::tuner
