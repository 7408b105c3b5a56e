// HTML reports: one self-contained page per analyze, tune, simulate --compare and pack run
// (--html FILE). The page inlines its style, its scripts, the charting library (Apache ECharts,
// embedded at build time: reports/html/html_assets.hpp) and its data as JSON
// (reports/html/page_data.hpp: the command's --json report), so that it opens offline, loads
// nothing and can be mailed or archived as one file. Figures carry what they are: measured (read
// from the traces), simulated (the simulator or a what-if replay) or predicted (the cost model).
//
// The page checks itself (reports/html/assets/page.js): errors, loads attempted and the marks
// each chart drew go into <pre id="wlb-check">, which tests/integration/test_html_report.cpp
// reads from headless Chromium.
#pragma once

#include "reports/html/page_data.hpp"

#include <nlohmann/json_fwd.hpp>
#include <string>

namespace wlb::reports {

/// The whole page for `report`, the command's --json document. `page_path`: where it will be
/// written (links are relative to its folder). Throws as html_page_data.
std::string html_page(html_kind kind, const nlohmann::json& report,
                      const html_options& options = {}, const std::string& page_path = "");

/// Writes html_page(...) to `path` atomically (base/atomic_file.hpp): a failed write leaves no
/// page, and an older page at `path` untouched. Throws wlb::usage_error for "-" (a page is a
/// file), wlb::runtime_failure naming the path on an I/O error.
void write_html_report(html_kind kind, const nlohmann::json& report, const std::string& path,
                       const html_options& options = {});

/// The terminal's line for a page written to `path` ("HTML report: PATH ..."); empty when
/// `path` is.
std::string html_output_note(const std::string& path);

} // namespace wlb::reports
