// What an HTML report page embeds: the command's JSON report (the document its --json writes,
// built by the same function), reshaped only where a page would otherwise grow with the job's
// size, plus what the page needs to link or label. The page's charts read nothing else.
//
//   analyze   the per-rank breakdown of every step (steps[].breakdown) becomes rank x step
//             matrices of compute, exposed communication and idle seconds ("ranks"): a row per
//             rank, or per TP group where the trace's TP peers are copies of their TP rank 0
//             (job.tp_replicated, simulated traces); beyond max_heatmap_rows rows (columns:
//             max_heatmap_columns steps) a cell covers consecutive rows (steps) and holds the
//             largest value in them; the per-step
//             straggler lists (steps[].stragglers) are left out (the job-wide ones stay);
//             work_check.cells become columns;
//   pack      each result's per-step measures (results[].steps) become columns;
//   tune, simulate  the report as it is.
// Every number that is not an integer keeps `significant_digits` significant digits (the
// page's tooltips show four; --json keeps full precision).
//
// The result: {"kind", "report", "view" (kind-specific: "ranks" for analyze), "page"
// ({"perfetto": link or null, "significant_digits"})}.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>

namespace wlb::reports {

/// Which command's report a page shows; each has its own charts (reports/html/assets/*.js).
enum class html_kind : std::uint8_t {
    analyze,  ///< wlbtune.analysis/1
    tune,     ///< wlbtune.config/1
    simulate, ///< wlbtune.simulate/1 with "compare" (simulate --compare)
    pack,     ///< wlbtune.pack/1 with per-step measures in "results[].steps"
};

/// "analyze", "tune", "simulate", "pack".
std::string_view to_string(html_kind k) noexcept;

struct html_options {
    /// analyze: the Perfetto trace written beside the page (--perfetto), linked from the page
    /// by its path relative to the page's folder; empty: none.
    std::string perfetto_path;
    int max_heatmap_rows = 256;    ///< ranks shown one per row up to this many
    int max_heatmap_columns = 256; ///< steps shown one per column up to this many
    int significant_digits = 6;
};

/// The page's data for `report` (the command's --json document). `page_path` is where the page
/// will be written (for the relative Perfetto link). Throws wlb::input_error when the report is
/// not of the kind's schema (or, for simulate, has no "compare"; for pack, no per-step
/// measures).
nlohmann::json html_page_data(html_kind kind, const nlohmann::json& report,
                              const html_options& options, const std::string& page_path = "");

} // namespace wlb::reports
