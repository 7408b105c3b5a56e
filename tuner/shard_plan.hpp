// Sharding a packing plan (tuner/plan_io.hpp): the cost model a plan implies, with overrides,
// and the loop over its steps. What `wlbtune shard` runs.
#pragma once

#include "tuner/cost_model.hpp"
#include "tuner/shard_run.hpp"

#include <string>

namespace wlb::tuner {

class plan_reader;
struct plan_header;

/// Overrides of what the plan header says; empty / 0 keeps the header's value.
struct plan_cost_overrides {
    std::string model;    ///< preset name or JSON file
    std::string hardware; ///< preset name or JSON file
    std::string layout;   ///< "tp=8,cp=2,pp=4,dp=1" (order: the header's)
    int cp = 0;           ///< replaces the layout's cp
};

/// The plan's model, hardware and layout, with `o` applied. Throws wlb::input_error on a bad
/// override (naming the option).
cost_model cost_model_for_plan(const plan_header& h, const plan_cost_overrides& o);

/// The sharding spec the plan header carries (`wlbtune pack --sharding`), or std::nullopt when
/// it carries none. Throws wlb::input_error naming the plan's first line on a bad object.
std::optional<sharding_spec> plan_sharding_spec(const plan_header& h, const std::string& path);

/// Shards every micro-batch of every remaining step of `reader` with `s`; records go to `sink`.
shard_run_summary shard_plan(plan_reader& reader, const sharder& s, const cost_model& cost,
                             const shard_record_sink& sink = {});

} // namespace wlb::tuner
