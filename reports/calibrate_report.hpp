// The `calibrate` reports: what was measured and on what, the calibrated hardware against the
// preset it replaces (field by field, the attention rates by chunk length), how well the cost
// model predicts every class of samples with it (the fit's residuals), the attention forms
// compared, and what was left at the preset; and versioned JSON ("wlbtune.calibrate/1") with the
// hardware file, the fit and every sample. Everything here is measured or fitted to measurements.
#pragma once

#include "tuner/job/calibrate_job.hpp"

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace wlb::reports {

inline constexpr std::string_view calibrate_schema = "wlbtune.calibrate/1";

[[nodiscard]] std::string calibrate_text(const tuner::calibrate_outcome& c,
                                         const std::string& hardware_path);
[[nodiscard]] nlohmann::json calibrate_json(const tuner::calibrate_outcome& c,
                                            const std::string& hardware_path);

} // namespace wlb::reports
