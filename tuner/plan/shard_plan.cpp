#include "tuner/plan/shard_plan.hpp"

#include "base/error.hpp"
#include "tuner/plan/plan_io.hpp"
#include "tuner/sharding/make_sharder.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace wlb::tuner {

cost_model cost_model_for_plan(const plan_header& h, const plan_cost_overrides& o) {
    const auto base =
        runtime::layout::parse(o.layout.empty() ? h.layout_spec : o.layout, h.layout_order);
    if (o.cp < 0)
        throw input_error(fmt::format("--cp {}: expected a CP degree >= 1", o.cp));
    try {
        const runtime::layout layout(base.tp(), o.cp > 0 ? o.cp : base.cp(), base.pp(), base.dp(),
                                     base.vpp(), base.order());
        return cost_model(o.model.empty() ? h.model : runtime::load_model(o.model),
                          o.hardware.empty() ? h.hardware : load_hardware(o.hardware), layout);
    } catch (const input_error& e) {
        if (o.cp > 0)
            throw input_error(fmt::format("--cp {}: {}", o.cp, e.what()));
        throw;
    }
}

plan_sharding_choice choose_plan_sharding(const plan_header& h, int plan_cp, int cp,
                                          std::string_view policy,
                                          std::string_view hybrid_threshold) {
    const bool recorded_fits = h.sharding && plan_cp == cp;
    plan_sharding_choice c;
    if (policy == "plan") {
        if (!h.sharding)
            throw input_error("--policy plan: the plan records no CP sharding (write it with "
                              "`wlbtune pack --sharding POLICY -o PLAN`)");
        if (!recorded_fits)
            throw input_error(fmt::format("--policy plan: the plan records its chunks over "
                                          "cp={}, not cp={}",
                                          plan_cp, cp));
    }
    if (policy == "plan" || (policy.empty() && recorded_fits && hybrid_threshold.empty())) {
        if (!hybrid_threshold.empty())
            throw input_error("--hybrid-threshold: the plan's recorded chunks are measured as "
                              "they are; give --policy hybrid to shard anew");
        c.reported = *h.sharding;
        c.source = fmt::format("the plan's recorded chunks ({}, cp={})",
                               describe_sharding(*h.sharding), plan_cp);
        return c;
    }
    sharding_spec spec;
    if (!policy.empty())
        spec.policy = parse_sharding_policy(policy, "--policy");
    else if (h.sharding)
        spec = *h.sharding;
    if (!hybrid_threshold.empty()) {
        if (spec.policy != sharding_policy::hybrid)
            throw input_error(fmt::format("--hybrid-threshold applies to the hybrid policy only, "
                                          "not {}",
                                          to_string(spec.policy)));
        spec.hybrid_threshold_tokens =
            parse_hybrid_threshold(hybrid_threshold, "--hybrid-threshold");
    }
    if (!policy.empty()) {
        c.source = fmt::format("--policy {}", describe_sharding(spec));
    } else if (h.sharding) {
        c.source =
            fmt::format("the plan's policy {}, applied anew at cp={}", describe_sharding(spec), cp);
        if (plan_cp != cp)
            c.source += fmt::format(" (its recorded chunks are for cp={})", plan_cp);
    } else {
        c.source = "adaptive (the default: the plan records no sharding)";
    }
    c.spec = spec;
    c.reported = spec;
    return c;
}

plan_shard_summary shard_plan(plan_reader& reader, const sharder* s, const cost_model& cost,
                              const shard_record_sink& sink) {
    const bool compare = reader.header().sharding && reader.cp() == cost.layout().cp();
    WLB_EXPECTS(s || compare,
                "shard_plan without a sharder needs a plan that records chunks over cp={}",
                cost.layout().cp());
    plan_shard_summary out;
    shard_run_accumulator acc;
    shard_run_accumulator recorded_acc;
    while (auto step = reader.next()) {
        if (!s) {
            measure_step(*step, reader.sharding(), cost, acc, sink);
            continue;
        }
        const auto decisions = shard_step(*step, *s, cost, acc, sink);
        if (!compare)
            continue;
        measure_step(*step, reader.sharding(), cost, recorded_acc);
        for (std::size_t r = 0; r < decisions.size(); ++r)
            for (std::size_t m = 0; m < decisions[r].size(); ++m)
                if (!same_chunks(decisions[r][m].sharded, reader.sharding()[r][m].sharded))
                    ++out.differing_micro_batches;
    }
    out.run = acc.summary();
    if (s && compare)
        out.recorded = recorded_acc.summary();
    return out;
}

shard_outcome shard_plan_file(const shard_request& r, const shard_record_sink& sink) {
    if (r.cp && *r.cp < 1)
        throw input_error(fmt::format("--cp {}: expected a CP degree >= 1", *r.cp));
    plan_reader reader(r.plan_path);
    auto cost =
        cost_model_for_plan(reader.header(), {r.model, r.hardware, r.layout, r.cp.value_or(0)});
    auto choice = choose_plan_sharding(reader.header(), reader.cp(), cost.layout().cp(), r.policy,
                                       r.hybrid_threshold);
    const auto sharder = choice.spec ? make_sharder(*choice.spec, cost) : nullptr;
    auto summary = shard_plan(reader, sharder.get(), cost, sink);
    return {std::move(cost), std::move(choice), std::move(summary)};
}

} // namespace wlb::tuner
