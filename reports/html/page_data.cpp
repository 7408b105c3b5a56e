#include "reports/html/page_data.hpp"

#include "base/error.hpp"
#include "runtime/parallel/layout.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

namespace wlb::reports {
namespace {

using json = nlohmann::json;

// Keeps `digits` significant digits of every non-integer number (the shortest text that reads
// back as the rounded value is what nlohmann writes).
void round_numbers(json& j, int digits) {
    if (j.is_number_float()) {
        const double x = j.get<double>();
        if (std::isfinite(x) && x != 0.0) {
            const int exponent = static_cast<int>(std::floor(std::log10(std::fabs(x))));
            const double scale = std::pow(10.0, digits - 1 - exponent);
            j = std::round(x * scale) / scale;
        }
    } else if (j.is_array() || j.is_object()) {
        for (auto& v : j)
            round_numbers(v, digits);
    }
}

// Leaf fields of a flat-or-nested object as "a" / "a.b" paths, in the object's order.
void leaf_paths(const json& o, const std::string& prefix, std::vector<std::string>& out) {
    for (const auto& [key, v] : o.items()) {
        const auto path = prefix.empty() ? key : prefix + "." + key;
        if (v.is_object())
            leaf_paths(v, path, out);
        else
            out.push_back(path);
    }
}

const json* at_path(const json& o, const std::string& path) {
    const json* cur = &o;
    std::size_t start = 0;
    while (true) {
        const auto dot = path.find('.', start);
        const auto key = path.substr(start, dot == std::string::npos ? dot : dot - start);
        if (!cur->is_object())
            return nullptr;
        const auto it = cur->find(key);
        if (it == cur->end())
            return nullptr;
        cur = &*it;
        if (dot == std::string::npos)
            return cur;
        start = dot + 1;
    }
}

// An array of objects as columns: {"field": [values...], "nested.field": [...]}, the fields of
// every element (null where one lacks a field).
json columns_of(const json& rows) {
    std::vector<std::string> fields;
    for (const auto& r : rows) {
        std::vector<std::string> mine;
        leaf_paths(r, "", mine);
        for (auto& f : mine)
            if (std::find(fields.begin(), fields.end(), f) == fields.end())
                fields.push_back(std::move(f));
    }
    json out = json::object();
    for (const auto& f : fields) {
        auto col = json::array();
        for (const auto& r : rows) {
            const auto* v = at_path(r, f);
            col.push_back(v ? *v : json(nullptr));
        }
        out[f] = std::move(col);
    }
    return out;
}

void expect_schema(const json& report, std::string_view schema, html_kind kind) {
    if (!report.is_object() || report.value("schema", "") != schema)
        throw input_error(fmt::format("an HTML {} report needs a {} document, found {}",
                                      to_string(kind), schema,
                                      report.is_object() ? report.value("schema", "no schema")
                                                         : std::string("no JSON object")));
}

double number_or_zero(const json& o, const char* key) {
    const auto it = o.find(key);
    return it != o.end() && it->is_number() ? it->get<double>() : 0.0;
}

// One rank's figures in one step, from a steps[].breakdown entry.
struct rank_cell {
    double compute_s = 0.0;
    double exposed_comm_s = 0.0;
    double idle_s = 0.0;
};

rank_cell cell_of(const json& b) {
    rank_cell c;
    c.compute_s = number_or_zero(b, "attention_seconds") + number_or_zero(b, "linear_seconds") +
                  number_or_zero(b, "other_seconds") + number_or_zero(b, "unsplit_compute_seconds");
    if (const auto it = b.find("communication"); it != b.end() && it->is_object())
        for (const auto& [lane, split] : it->items())
            c.exposed_comm_s += number_or_zero(split, "exposed_seconds");
    c.idle_s = number_or_zero(b, "idle_seconds");
    return c;
}

// The heatmap's rows before the size limit: one per rank, or one per TP group where the trace's
// TP peers carry copies of their TP rank 0 (job.tp_replicated: the rows would repeat it).
struct row_unit {
    std::vector<int> ranks;
    std::string place; ///< "tp 0, cp 1, pp 2, dp 0", or "TP group: cp 1, pp 2, dp 0"
};

std::vector<row_unit> row_units(const json& job, int world, bool& tp_groups) {
    std::optional<runtime::layout> l;
    try {
        l = runtime::layout::parse(job.value("layout", ""),
                                   job.value("order", runtime::layout::default_order));
        if (l->world_size() != world)
            l.reset();
    } catch (const wlb::error&) {
        l.reset(); // rows say the rank alone
    }
    tp_groups = l && l->tp() > 1 && job.value("tp_replicated", false);
    std::vector<row_unit> units;
    std::map<std::array<int, 3>, std::size_t> group_of;
    for (int r = 0; r < world; ++r) {
        if (!l) {
            units.push_back({{r}, ""});
            continue;
        }
        const auto c = l->coords_of(r);
        if (!tp_groups) {
            units.push_back(
                {{r}, fmt::format("tp {}, cp {}, pp {}, dp {}", c.tp, c.cp, c.pp, c.dp)});
            continue;
        }
        const std::array<int, 3> key = {c.cp, c.pp, c.dp};
        const auto [it, fresh] = group_of.try_emplace(key, units.size());
        if (fresh)
            units.push_back({{}, fmt::format("TP group: cp {}, pp {}, dp {}", c.cp, c.pp, c.dp)});
        units[it->second].ranks.push_back(r);
    }
    return units;
}

// "5", "0-7" (consecutive), or "0,8,16" (a TP group of another axis order).
std::string ranks_label(const std::vector<int>& ranks) {
    if (ranks.size() == 1)
        return fmt::format("{}", ranks.front());
    const bool consecutive = ranks.back() - ranks.front() + 1 == static_cast<int>(ranks.size());
    return consecutive ? fmt::format("{}-{}", ranks.front(), ranks.back())
                       : fmt::format("{}", fmt::join(ranks, ","));
}

// The rank x step matrices of the analyze page (page_data.hpp).
json rank_matrices(const json& report, const html_options& o) {
    const auto& steps = report.at("steps");
    std::vector<std::int64_t> step_ids;
    std::vector<std::map<int, rank_cell>> per_step;
    int world = report.contains("job") ? report["job"].value("world_size", 0) : 0;
    for (const auto& s : steps) {
        const auto it = s.find("breakdown");
        if (it == s.end() || !it->is_array())
            continue;
        std::map<int, rank_cell> cells;
        for (const auto& b : *it) {
            const int rank = b.value("rank", -1);
            if (rank < 0)
                continue;
            cells[rank] = cell_of(b);
            world = std::max(world, rank + 1);
        }
        step_ids.push_back(s.value("step", std::int64_t{0}));
        per_step.push_back(std::move(cells));
    }
    bool tp_groups = false;
    const auto units = row_units(report.value("job", json::object()), world, tp_groups);
    const int n_units = static_cast<int>(units.size());
    const int max_rows = std::max(1, o.max_heatmap_rows);
    const int max_cols = std::max(1, o.max_heatmap_columns);
    const int n_steps = static_cast<int>(step_ids.size());
    const int units_per_row = std::max(1, (n_units + max_rows - 1) / max_rows);
    const int steps_per_col = std::max(1, (n_steps + max_cols - 1) / max_cols);
    const int rows = (n_units + units_per_row - 1) / units_per_row;
    const int cols = (n_steps + steps_per_col - 1) / steps_per_col;

    std::vector<std::vector<int>> row_ranks;
    auto row_list = json::array();
    for (int r = 0; r < rows; ++r) {
        std::vector<int> ranks;
        for (int u = r * units_per_row; u < std::min(n_units, (r + 1) * units_per_row); ++u)
            for (const int k : units[static_cast<std::size_t>(u)].ranks)
                ranks.push_back(k);
        std::sort(ranks.begin(), ranks.end());
        json row = {{"first_rank", ranks.front()},
                    {"last_rank", ranks.back()},
                    {"ranks", ranks.size()},
                    {"label", ranks_label(ranks)}};
        if (units_per_row == 1 && !units[static_cast<std::size_t>(r)].place.empty())
            row["place"] = units[static_cast<std::size_t>(r)].place;
        row_list.push_back(std::move(row));
        row_ranks.push_back(std::move(ranks));
    }
    auto col_list = json::array();
    for (int c = 0; c < cols; ++c) {
        const int first = c * steps_per_col;
        const int last = std::min(n_steps, first + steps_per_col) - 1;
        col_list.push_back({{"first_step", step_ids[static_cast<std::size_t>(first)]},
                            {"last_step", step_ids[static_cast<std::size_t>(last)]}});
    }
    // Each cell: the largest value of the ranks and steps it covers (a heavy rank stays visible
    // in its group); null where none of them is in the trace.
    auto matrix = [&](double rank_cell::*field) {
        auto m = json::array();
        for (int r = 0; r < rows; ++r) {
            auto line = json::array();
            for (int c = 0; c < cols; ++c) {
                std::optional<double> best;
                for (int s = c * steps_per_col; s < std::min(n_steps, (c + 1) * steps_per_col);
                     ++s) {
                    const auto& cells = per_step[static_cast<std::size_t>(s)];
                    for (const int k : row_ranks[static_cast<std::size_t>(r)])
                        if (const auto it = cells.find(k); it != cells.end())
                            best = std::max(best.value_or(it->second.*field), it->second.*field);
                }
                line.push_back(best ? json(*best) : json(nullptr));
            }
            m.push_back(std::move(line));
        }
        return m;
    };
    return {{"world_size", world},
            {"rows_are", tp_groups ? "tp_groups" : "ranks"},
            {"units_per_row", units_per_row},
            {"steps_per_column", steps_per_col},
            {"rows", std::move(row_list)},
            {"columns", std::move(col_list)},
            {"compute_seconds", matrix(&rank_cell::compute_s)},
            {"exposed_comm_seconds", matrix(&rank_cell::exposed_comm_s)},
            {"idle_seconds", matrix(&rank_cell::idle_s)}};
}

json analyze_view(json& report, const html_options& o) {
    if (!report.contains("steps") || !report["steps"].is_array())
        throw input_error("an HTML analyze report needs the report's \"steps\"");
    json view = {{"ranks", rank_matrices(report, o)}};
    for (auto& s : report["steps"]) {
        s.erase("breakdown");
        s.erase("stragglers");
    }
    if (auto it = report.find("work_check"); it != report.end() && it->contains("cells"))
        (*it)["cells"] = columns_of((*it)["cells"]);
    return view;
}

void pack_view(json& report) {
    if (!report.contains("results") || !report["results"].is_array())
        throw input_error("an HTML pack report needs the report's \"results\"");
    for (auto& r : report["results"]) {
        if (!r.contains("steps"))
            throw input_error("an HTML pack report needs each result's per-step measures "
                              "(results[].steps)");
        r["steps"] = columns_of(r["steps"]);
    }
}

std::string relative_link(const std::string& target, const std::string& page_path) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const auto from = fs::absolute(fs::path(page_path), ec).parent_path();
    const auto to = fs::absolute(fs::path(target), ec);
    auto rel = to.lexically_relative(from);
    return rel.empty() ? target : rel.generic_string();
}

} // namespace

std::string_view to_string(html_kind k) noexcept {
    switch (k) {
    case html_kind::analyze:
        return "analyze";
    case html_kind::tune:
        return "tune";
    case html_kind::simulate:
        return "simulate";
    case html_kind::pack:
        return "pack";
    }
    return "?";
}

json html_page_data(html_kind kind, const json& report_in, const html_options& o,
                    const std::string& page_path) {
    json report = report_in;
    json view = json::object();
    switch (kind) {
    case html_kind::analyze:
        expect_schema(report, "wlbtune.analysis/1", kind);
        view = analyze_view(report, o);
        break;
    case html_kind::tune:
        expect_schema(report, "wlbtune.config/1", kind);
        break;
    case html_kind::simulate:
        expect_schema(report, "wlbtune.simulate/1", kind);
        if (!report.contains("compare"))
            throw input_error("an HTML simulate report needs a comparison (simulate --compare)");
        break;
    case html_kind::pack:
        expect_schema(report, "wlbtune.pack/1", kind);
        pack_view(report);
        break;
    }
    json page = {{"significant_digits", o.significant_digits}};
    page["perfetto"] =
        o.perfetto_path.empty() ? json(nullptr) : json(relative_link(o.perfetto_path, page_path));
    json out = {{"kind", to_string(kind)},
                {"report", std::move(report)},
                {"view", std::move(view)},
                {"page", std::move(page)}};
    round_numbers(out["report"], o.significant_digits);
    round_numbers(out["view"], o.significant_digits);
    return out;
}

} // namespace wlb::reports
