// The `wlbtune data` report: a dataset's length statistics, its long-document share, a log2
// histogram and what the context policy did, as text or JSON (schema "wlbtune.data/1").
#pragma once

#include "base/provenance.hpp"
#include "tuner/data/data_profile.hpp"

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace wlb::reports {

inline constexpr const char* data_schema = "wlbtune.data/1";

std::string data_text(const tuner::data_profile& p);
/// report_header(data_schema, inputs) plus "source" (spec, description), "stream" (options and
/// counts), "lengths" (the summary) fields.
nlohmann::json data_json(const tuner::data_profile& p, const std::string& spec,
                         const std::vector<wlb::input_identity>& inputs);

} // namespace wlb::reports
