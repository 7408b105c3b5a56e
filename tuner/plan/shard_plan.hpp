// Sharding a packing plan (tuner/plan/plan_io.hpp): the cost model a plan implies, with overrides,
// which sharding to measure (a policy, or the chunks the plan records), and the loop over its
// steps. What `wlbtune shard` runs.
#pragma once

#include "tuner/cost/cost_model.hpp"
#include "tuner/sharding/shard_run.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace wlb::tuner {

class plan_reader;
struct plan_header;

/// Overrides of what the plan header says; empty / 0 keeps the header's value.
struct plan_cost_overrides {
    std::string model;    ///< preset name or JSON file
    std::string hardware; ///< preset name or JSON file
    std::string layout;   ///< "tp=8,cp=2,pp=4,dp=1" (order: the header's)
    int cp = 0;           ///< replaces the layout's cp (--cp); < 0 is an input error
};

/// The plan's model, hardware and layout, with `o` applied. Throws wlb::input_error on a bad
/// override (naming the option).
cost_model cost_model_for_plan(const plan_header& h, const plan_cost_overrides& o);

/// What `wlbtune shard` measures on a plan.
struct plan_sharding_choice {
    /// The policy to shard every micro-batch with; std::nullopt: the plan's recorded chunks.
    std::optional<sharding_spec> spec;
    /// The spec behind the reported layouts (the plan's own for its recorded chunks).
    sharding_spec reported;
    /// One line for the report: where the sharding comes from.
    std::string source;
};

/// Resolves --policy and --hybrid-threshold against a plan of header `h` whose layout has
/// `plan_cp` CP ranks, to shard over `cp` ranks:
///   policy ""       the plan's recorded chunks when it records them for `cp` ranks; else the
///                   plan's sharding policy applied anew at `cp`; else adaptive
///   policy "plan"   the recorded chunks; an input error when the plan records none or records
///                   them for another cp
///   policy NAME     that policy (per-seq, per-doc, adaptive, hybrid)
/// `hybrid_threshold` ("" = not given, "auto", "16k") applies to hybrid only; given with any
/// other resolved policy it is an input error, never ignored.
plan_sharding_choice choose_plan_sharding(const plan_header& h, int plan_cp, int cp,
                                          std::string_view policy,
                                          std::string_view hybrid_threshold);

/// What a plan's sharding came to.
struct plan_shard_summary {
    shard_run_summary run; ///< the sharding measured and reported
    /// With a sharder, on a plan that records chunks over the same cp: those recorded chunks
    /// measured by the same cost model, for comparison; and how many micro-batches the two lay
    /// out differently (different chunks on some rank).
    std::optional<shard_run_summary> recorded;
    std::int64_t differing_micro_batches = 0;
};

/// Shards every micro-batch of every remaining step of `reader` with `s`, or, when `s` is null,
/// measures the plan's recorded chunks (the plan must record them over cost's cp). Each
/// measured record goes to `sink`.
plan_shard_summary shard_plan(plan_reader& reader, const sharder* s, const cost_model& cost,
                              const shard_record_sink& sink = {});

/// `wlbtune shard` as a library call: the plan sharded as `policy` and `hybrid_threshold`
/// choose (choose_plan_sharding), under the plan's cost model with the overrides.
struct shard_request {
    std::string plan_path;
    std::string model, hardware, layout; ///< overrides of the plan's; empty: the plan's
    std::optional<int> cp;               ///< shard over this many CP ranks; must be >= 1
    std::string policy;                  ///< "", "plan" or a policy name
    std::string hybrid_threshold;        ///< "" (not given), "auto" or a token count
};
struct shard_outcome {
    cost_model cost;
    plan_sharding_choice choice;
    plan_shard_summary summary;
};
/// Every measured record goes to `sink`.
shard_outcome shard_plan_file(const shard_request& request, const shard_record_sink& sink = {});

} // namespace wlb::tuner
