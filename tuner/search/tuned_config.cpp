#include "tuner/search/tuned_config.hpp"

#include "base/error.hpp"
#include "tuner/search/tune.hpp"

#include <fmt/format.h>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace wlb::tuner {
namespace {

nlohmann::json candidate_json(const candidate_result& r) {
    nlohmann::json j = {
        {"name", r.name},
        {"packing", to_json(r.config.packing)},
        {"sharding", to_json(r.config.sharding)},
        {"steps", r.steps},
        {"warmup_steps", r.warmup_steps},
        {"step_seconds", r.mean_step_seconds},
        {"first_half_step_seconds", r.first_half_seconds},
        {"second_half_step_seconds", r.second_half_seconds},
        {"imbalance", r.imbalance},
        {"cp_attention_imbalance", r.cp_imbalance},
        {"bubble_fraction", r.bubble_fraction},
        {"delay_iterations", {{"mean", r.delay_mean}, {"p99", r.delay_p99}, {"max", r.delay_max}}},
        {"step_tokens", {{"mean", r.mean_step_tokens}, {"budget", r.step_budget_tokens}}},
        {"waiting_documents_at_end", r.waiting_documents_at_end},
        {"memory_peak_gbytes", r.memory_peak_gbytes},
        {"feasible", r.feasible}};
    if (!r.feasible)
        j["infeasible"] = r.infeasible;
    return j;
}

double ratio(double num, double den) {
    return den > 0.0 ? num / den : 0.0;
}

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

nlohmann::json tuned_config_json(const tuned_config& c, const tune_result& r,
                                 const tune_options& o) {
    auto j = wlb::report_header(config_schema, c.data.inputs);
    j["layout"] = {{"spec", c.layout_spec}, {"order", c.layout_order}};
    j["context_tokens"] = c.context_tokens;
    j["model"] = to_json(c.model);
    j["hardware"] = to_json(c.hardware);
    nlohmann::json data = {{"spec", c.data.spec},
                           {"description", c.data.description},
                           {"context_policy", c.data.context_policy},
                           {"documents", c.data.documents},
                           {"tokens", c.data.tokens}};
    data["shuffle_seed"] =
        c.data.shuffle_seed ? nlohmann::json(*c.data.shuffle_seed) : nlohmann::json(nullptr);
    j["data"] = data;
    j["packing"] = to_json(r.winner.config.packing);
    j["sharding"] = to_json(r.winner.config.sharding);
    j["schedule"] = {{"schedule", c.schedule}, {"partition", c.partition}};
    j["evaluated"] = {{"steps", r.sample_steps},
                      {"note", "wlbtune pack --config FILE --steps N packs exactly the steps the "
                               "tuner simulated"}};

    const auto& w = r.winner;
    j["predicted"] = {
        {"label", "simulated"},
        {"name", w.name},
        {"step_seconds", w.mean_step_seconds},
        {"imbalance", w.imbalance},
        {"cp_attention_imbalance", w.cp_imbalance},
        {"bubble_fraction", w.bubble_fraction},
        {"delay_iterations", {{"mean", w.delay_mean}, {"p99", w.delay_p99}, {"max", w.delay_max}}},
        {"memory_peak_gbytes", w.memory_peak_gbytes},
        {"speedup",
         {{"over_plain", ratio(r.plain.mean_step_seconds, w.mean_step_seconds)},
          {"over_fixed_greedy", ratio(r.fixed_greedy.mean_step_seconds, w.mean_step_seconds)},
          {"over_paper", ratio(r.paper.mean_step_seconds, w.mean_step_seconds)}}}};
    j["baselines"] = {{"plain", candidate_json(r.plain)},
                      {"fixed_greedy", candidate_json(r.fixed_greedy)},
                      {"paper", candidate_json(r.paper)}};
    j["winner"] = candidate_json(w);
    auto runners = nlohmann::json::array();
    for (const auto& x : r.runners_up)
        runners.push_back(candidate_json(x));
    j["runners_up"] = runners;
    auto knobs = nlohmann::json::array();
    for (const auto& k : r.knobs)
        knobs.push_back({{"knob", k.knob},
                         {"tuned", k.tuned},
                         {"reverted", k.reverted},
                         {"step_seconds_without", k.without.mean_step_seconds},
                         {"slowdown_without", k.slowdown},
                         {"delay_mean_without", k.without.delay_mean},
                         {"feasible_without", k.without.feasible}});
    j["knobs"] = knobs;
    j["constraints"] = {
        {"max_mean_delay_iterations", o.constraints.max_mean_delay},
        {"max_delay_steps", o.constraints.max_delay_steps},
        {"memory_gbytes", r.winner_memory.usable_bytes / (1.0 - o.memory.reserve_fraction) / 1e9},
        {"memory_reserve_fraction", o.memory.reserve_fraction},
        {"min_step_tokens_fraction", o.constraints.min_step_tokens_fraction}};
    j["memory"] = to_json(r.winner_memory);
    // Every candidate evaluated, briefly: the tune report's scatter of step time against delay.
    auto evaluated = nlohmann::json::array();
    for (const auto& x : r.evaluated) {
        nlohmann::json e = {{"name", x.name},
                            {"steps", x.steps},
                            {"step_seconds", x.mean_step_seconds},
                            {"delay_mean_iterations", x.delay_mean},
                            {"delay_max_iterations", x.delay_max},
                            {"imbalance", x.imbalance},
                            {"feasible", x.feasible}};
        if (!x.feasible)
            e["infeasible"] = x.infeasible;
        evaluated.push_back(std::move(e));
    }
    auto caps = nlohmann::json::array();
    for (std::size_t i = 0; i < r.space.micro_batches.size(); ++i)
        caps.push_back({{"micro_batches", r.space.micro_batches[i]},
                        {"smax_cap_tokens", r.space.smax_cap_tokens[i]}});
    j["search"] = {{"seed", o.seed},
                   {"time_budget_seconds", o.time_budget_seconds},
                   {"elapsed_seconds", r.elapsed_seconds},
                   {"stopped_by_budget", r.stopped_by_budget},
                   {"threads", r.threads},
                   {"evaluations", r.evaluations},
                   {"candidates", std::move(evaluated)},
                   {"sample_steps", r.sample_steps},
                   {"sample_documents", r.sample_documents},
                   {"stability",
                    {{"steps_per_half", r.stability.steps_per_half},
                     {"candidates", r.stability.candidates},
                     {"kendall_tau", r.stability.kendall_tau},
                     {"regret", r.stability.regret},
                     {"stable", r.stability.stable},
                     {"growths", r.stability.growths}}},
                   {"space",
                    {{"coarse_thresholds", r.space.coarse_thresholds},
                     {"fine_thresholds", r.space.fine_thresholds},
                     {"smax_caps", caps},
                     {"fine_smax_factors", r.space.fine_smax_factors}}}};
    j["notes"] = r.notes;
    return j;
}

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
    c.model = model_from_json(rd.at(j, "model", "$"), rd.where("$.model"));
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
    if (auto it = j.find("evaluated"); it != j.end())
        c.evaluated_steps = rd.integer(*it, "steps", "$.evaluated");
    return c;
}

tuned_config read_tuned_config(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw input_error(fmt::format("{}: cannot open the tuned config", path));
    std::ostringstream text;
    text << in.rdbuf();
    auto j = nlohmann::json::parse(text.str(), nullptr, false);
    if (j.is_discarded())
        throw input_error(path, "not valid JSON (expected a wlbtune.config/1 document)");
    return tuned_config_from_json(j, path);
}

} // namespace wlb::tuner
