// Tuned configurations on disk ("wlbtune.config/1", design.md section 4; docs/formats.md is the
// reference): what `wlbtune tune` writes and `wlbtune pack --config` / `wlbtune simulate
// --config` apply unchanged.
//
// The reproducible part (read back by read_tuned_config): layout, context, model, hardware,
// the data the tuner read (source spec, dataloader order, context policy), packing policy and
// parameters, CP sharding policy and parameters, pipeline schedule and stage partition, and the
// number of steps the tuner simulated. Packing the same data with these settings gives exactly
// the batches the tuner evaluated (tests/integration/test_cli_tune.cpp checks it).
// The report part (written, not read back): the predicted (simulated) figures of the winner,
// the baselines (plain + per-seq, fixed-greedy, the paper's wlb 2 queues + adaptive) and the
// runners-up, what each knob bought, the constraints, the search's statistics and the ranking's
// stability.
#pragma once

#include "base/provenance.hpp"
#include "runtime/model/model_spec.hpp"
#include "tuner/cost/hardware.hpp"
#include "tuner/packing/packer.hpp"
#include "tuner/sharding/sharding.hpp"

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wlb::tuner {

inline constexpr std::string_view config_schema = "wlbtune.config/1";

/// The documents the tuner read, as `--data` and the stream options name them.
struct tuned_data {
    std::string spec = "default";              ///< the --data argument
    std::string description;                   ///< the stream's describe()
    std::string context_policy = "truncate";   ///< truncate | split
    std::optional<std::uint64_t> shuffle_seed; ///< nullopt: the stored order
    std::int64_t documents = 0;                ///< documents the tuner held in memory
    std::int64_t tokens = 0;
    std::vector<wlb::input_identity> inputs; ///< path, size and hash of the files read
};

/// Everything needed to reproduce the tuned packing and sharding.
struct tuned_config {
    std::string layout_spec = "tp=8,cp=2,pp=4,dp=1";
    std::string layout_order = "tp-cp-pp-dp";
    std::int64_t context_tokens = 131072;
    runtime::model_spec model;
    hardware_config hardware;
    tuned_data data;
    packing_config packing;
    sharding_spec sharding;
    std::string schedule = "auto";    ///< pipeline schedule (runtime::parse_schedule)
    std::string partition = "even";   ///< stage partition (runtime::make_stage_partition)
    std::int64_t evaluated_steps = 0; ///< steps the tuner simulated (from step 0)
};

/// Reads the reproducible part. Throws wlb::input_error "FILE: $.path: what" on a missing or
/// malformed field, another schema, or a file that is not JSON.
tuned_config read_tuned_config(const std::string& path);
/// The same from parsed JSON; `where` names the file.
tuned_config tuned_config_from_json(const nlohmann::json& j, std::string_view where);

} // namespace wlb::tuner
