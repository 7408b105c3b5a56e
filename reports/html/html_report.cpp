#include "reports/html/html_report.hpp"

#include "base/atomic_file.hpp"
#include "base/error.hpp"
#include "reports/html/html_assets.hpp"

#include <fmt/format.h>
#include <map>
#include <nlohmann/json.hpp>

namespace wlb::reports {
namespace {

std::string_view asset(std::string_view name) {
    const auto text = html_asset(name);
    WLB_EXPECTS(!text.empty(), "the HTML asset {} was not embedded at build time", name);
    return text;
}

std::string escape_html(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (const char c : text) {
        switch (c) {
        case '&':
            out += "&amp;";
            break;
        case '<':
            out += "&lt;";
            break;
        case '>':
            out += "&gt;";
            break;
        case '"':
            out += "&quot;";
            break;
        default:
            out += c;
        }
    }
    return out;
}

// JSON inside <script type="application/json">: "</" could close the element and "<!--" open a
// comment, so every '<' is written as the JSON escape \u003c (JSON.parse reads it back).
std::string script_json(const nlohmann::json& j) {
    const auto text = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    std::string out;
    out.reserve(text.size());
    for (const char c : text) {
        if (c == '<')
            out += "\\u003c";
        else
            out += c;
    }
    return out;
}

// A script's text inside <script>: the embedded files never hold "</script" (checked here, so a
// new version of the library that did cannot end the element early).
std::string_view script_text(std::string_view name) {
    const auto text = asset(name);
    WLB_EXPECTS(text.find("</script") == std::string_view::npos, "the HTML asset {} holds </script",
                name);
    return text;
}

std::string title_of(html_kind kind, const nlohmann::json& report) {
    std::string layout;
    if (const auto it = report.find("layout"); it != report.end())
        layout = it->is_string() ? it->get<std::string>() : it->value("spec", "");
    else if (const auto job = report.find("job"); job != report.end())
        layout = job->value("layout", "");
    std::string what;
    switch (kind) {
    case html_kind::analyze:
        what = "analyze";
        break;
    case html_kind::tune:
        what = "tune";
        break;
    case html_kind::simulate:
        what = "simulate --compare";
        break;
    case html_kind::pack:
        what = "pack";
        break;
    }
    return layout.empty() ? fmt::format("wlbtune {}", what)
                          : fmt::format("wlbtune {}: {}", what, layout);
}

// Fills the template's {{name}} markers once, left to right; inserted text is never scanned
// (a script may hold "{{").
std::string fill(std::string_view tmpl, const std::map<std::string, std::string_view>& values) {
    std::string out;
    std::size_t at = 0;
    while (true) {
        const auto open = tmpl.find("{{", at);
        if (open == std::string_view::npos)
            break;
        const auto close = tmpl.find("}}", open);
        WLB_EXPECTS(close != std::string_view::npos, "page.html: a {{{{ without }}}}");
        const auto name = std::string(tmpl.substr(open + 2, close - open - 2));
        const auto it = values.find(name);
        WLB_EXPECTS(it != values.end(), "page.html: unknown marker {{{{{}}}}}", name);
        out += tmpl.substr(at, open - at);
        out += it->second;
        at = close + 2;
    }
    out += tmpl.substr(at);
    return out;
}

} // namespace

std::string html_page(html_kind kind, const nlohmann::json& report, const html_options& options,
                      const std::string& page_path) {
    const auto data = script_json(html_page_data(kind, report, options, page_path));
    const auto title = escape_html(title_of(kind, report));
    const std::string_view kind_script = kind == html_kind::analyze ? "analyze.js"
                                         : kind == html_kind::tune  ? "tune.js"
                                                                    : "compare.js";
    return fill(asset("page.html"), {{"title", title},
                                     {"css", asset("page.css")},
                                     {"data", data},
                                     {"echarts", script_text("echarts.min.js")},
                                     {"page_js", script_text("page.js")},
                                     {"kind_js", script_text(kind_script)}});
}

void write_html_report(html_kind kind, const nlohmann::json& report, const std::string& path,
                       const html_options& options) {
    if (path == "-" || path.empty())
        throw usage_error("--html needs a file name (a page is not written to standard output)");
    wlb::write_file_atomic(path, html_page(kind, report, options, path));
}

std::string html_output_note(const std::string& path) {
    return path.empty()
               ? std::string()
               : fmt::format("HTML report: {} (one self-contained page; opens offline)\n", path);
}

} // namespace wlb::reports
