// What `wlbtune tune` writes: the tuned config (tuner/spec/tuned_config.hpp) with the search's
// predictions, baselines, runners-up and statistics.
#pragma once

#include "tuner/spec/tuned_config.hpp"

#include <nlohmann/json_fwd.hpp>

namespace wlb::tuner {

struct tune_result;
struct tune_options;

/// The whole wlbtune.config/1 document: report header, the reproducible part of `config` with
/// the winner's packing and sharding, and the report part from `result`.
nlohmann::json tuned_config_json(const tuned_config& config, const tune_result& result,
                                 const tune_options& options);

} // namespace wlb::tuner
