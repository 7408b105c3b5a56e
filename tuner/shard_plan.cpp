#include "tuner/shard_plan.hpp"

#include "runtime/error.hpp"
#include "tuner/plan_io.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace wlb::tuner {

cost_model cost_model_for_plan(const plan_header& h, const plan_cost_overrides& o) {
    const auto base =
        runtime::layout::parse(o.layout.empty() ? h.layout_spec : o.layout, h.layout_order);
    if (o.cp < 0)
        throw input_error(fmt::format("--cp {} must be a positive integer", o.cp));
    const runtime::layout layout(base.tp(), o.cp > 0 ? o.cp : base.cp(), base.pp(), base.dp(),
                                 base.vpp(), base.order());
    return cost_model(o.model.empty() ? h.model : load_model(o.model),
                      o.hardware.empty() ? h.hardware : load_hardware(o.hardware), layout);
}

std::optional<sharding_spec> plan_sharding_spec(const plan_header& h, const std::string& path) {
    if (h.sharding_json.empty())
        return std::nullopt;
    const auto where = fmt::format("{}:1: $.sharding", path);
    auto j = nlohmann::json::parse(h.sharding_json, nullptr, false);
    if (j.is_discarded())
        throw input_error(where, "is not valid JSON");
    return sharding_spec_from_json(j, where);
}

shard_run_summary shard_plan(plan_reader& reader, const sharder& s, const cost_model& cost,
                             const shard_record_sink& sink) {
    shard_run_accumulator acc;
    while (auto step = reader.next())
        shard_step(*step, s, cost, acc, sink);
    return acc.summary();
}

} // namespace wlb::tuner
