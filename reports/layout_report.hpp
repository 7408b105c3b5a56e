// The `wlbtune layout` report: rank <-> coordinates and every group, as text or JSON
// (schema "wlbtune.layout/1").
#pragma once

#include "runtime/parallel/layout.hpp"

#include <nlohmann/json_fwd.hpp>
#include <string>

namespace wlb::reports {

inline constexpr const char* layout_schema = "wlbtune.layout/1";

std::string layout_text(const runtime::layout& l);
nlohmann::json layout_json(const runtime::layout& l);

} // namespace wlb::reports
