// The `simulate` reports: versioned JSON ("wlbtune.simulate/1") and terminal tables. Every
// figure is simulated (the cost model's prediction), and both say so.
#pragma once

#include "runtime/provenance.hpp"
#include "tuner/simulate_job.hpp"

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>

namespace wlb::reports {

inline constexpr std::string_view simulate_schema = "wlbtune.simulate/1";

struct simulate_context {
    std::string model;
    std::string hardware;
    std::string schedule;
    std::string partition;
    std::vector<std::string> faults;
    std::vector<runtime::input_identity> inputs;
};

nlohmann::json simulate_json(const tuner::cost_model& costs, const simulate_context& context,
                             const tuner::simulate_job_result& result);
std::string simulate_text(const tuner::cost_model& costs, const simulate_context& context,
                          const tuner::simulate_job_result& result);

} // namespace wlb::reports
