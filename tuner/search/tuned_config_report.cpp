#include "tuner/search/tuned_config_report.hpp"

#include "tuner/search/tune.hpp"

#include <nlohmann/json.hpp>

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

} // namespace wlb::tuner
