// The files an HTML report page is made of, embedded into the library at build time by
// cmake/embed_assets.cmake (CMakeLists.txt lists them): the page template (page.html), its style
// (page.css), the shared page code (page.js), one script per kind of page (analyze.js, tune.js,
// compare.js for pack and simulate) and the charting library (echarts.min.js, Apache ECharts,
// third_party/echarts/). Nothing is read from the source tree at run time.
#pragma once

#include <string_view>

namespace wlb::reports {

/// The embedded file `name` ("page.html", "echarts.min.js", ...), or an empty view for a name
/// that was not embedded.
std::string_view html_asset(std::string_view name) noexcept;

} // namespace wlb::reports
