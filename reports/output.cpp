#include "reports/output.hpp"

#include "base/atomic_file.hpp"
#include "base/error.hpp"
#include "base/provenance.hpp"

#include <cstdio>
#include <exception>
#include <fmt/format.h>

namespace wlb::reports {

void command_output::set_json(std::string json_path) {
    if (!json_path.empty())
        wlb::check_output_path(json_path, "--json");
    m_json = std::move(json_path);
}

void command_output::set_output(std::string path, std::string_view option) {
    if (json_on_stdout() && path == "-")
        throw usage_error(
            fmt::format("--json - and {} - cannot both write to standard output", option));
    if (!path.empty())
        wlb::check_output_path(path, option);
    m_output = std::move(path);
}

void command_output::output(std::string_view content) const {
    if (!m_output.empty())
        wlb::write_file_atomic(m_output, content);
}

void command_output::text(std::string_view text) const {
    if (json_on_stdout())
        return;
    fmt::print("{}", text);
    std::fflush(stdout);
}

void command_output::json(const nlohmann::json& report) const {
    if (m_json.empty())
        return;
    wlb::write_file_atomic(m_json, report.dump(2) + "\n");
}

void command_output::error(std::string_view kind, int exit_code,
                           const std::string& message) const noexcept {
    try {
        fmt::print(stderr, "wlbtune: error: {}\n", message);
        if (m_json.empty())
            return;
        auto j = wlb::report_header("wlbtune.error/1", {});
        j["error"] = {{"kind", kind}, {"exit_code", exit_code}, {"message", message}};
        wlb::write_file_atomic(m_json, j.dump(2) + "\n");
    } catch (const std::exception& e) {
        std::fprintf(stderr, "wlbtune: error: could not write the error report: %s\n", e.what());
    }
}

} // namespace wlb::reports
