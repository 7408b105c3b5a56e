// Where a command's results go, the same for every command: the terminal report on stdout, the
// JSON report to a file (written atomically) or to stdout in place of the terminal report ("-"),
// and the error report (wlbtune.error/1) where the JSON report would have gone when the command
// fails. Other output files (a plan, a tuned config) go through wlb::write_file_atomic, which
// takes "-" for stdout too; progress goes to stderr (reports/progress.hpp).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace wlb::reports {

class command_output {
public:
    /// `json_path`: empty (no JSON report), "-" (stdout, instead of the text) or a file, checked
    /// writable now (wlb::check_output_path), before the command's work.
    void set_json(std::string json_path);
    /// A JSON report on stdout only, as `layout --json` prints (there is no file form).
    void set_json_stdout(bool on) { m_json = on ? "-" : ""; }
    [[nodiscard]] bool json_on_stdout() const noexcept { return m_json == "-"; }
    [[nodiscard]] bool wants_json() const noexcept { return !m_json.empty(); }
    [[nodiscard]] const std::string& json_path() const noexcept { return m_json; }

    /// The command's main output (a plan, a tuned config, a hardware file), given as `option`:
    /// empty (none), "-" (stdout) or a file, checked writable now. Refused (wlb::usage_error)
    /// when the JSON report goes to stdout too. Call after set_json.
    void set_output(std::string path, std::string_view option = "-o");
    [[nodiscard]] const std::string& output_path() const noexcept { return m_output; }
    /// Writes the main output (atomically, or on stdout); nothing when there is none.
    void output(std::string_view content) const;

    /// Prints `text` on stdout (and flushes) unless the JSON report goes there.
    void text(std::string_view text) const;
    /// Writes the JSON report (two-space indented, a newline at the end) where it goes; nothing
    /// when the command has none.
    void json(const nlohmann::json& report) const;
    /// Reports a failure: "wlbtune: error: MESSAGE" on stderr, and a wlbtune.error/1 document
    /// where the JSON report goes. Never throws.
    void error(std::string_view kind, int exit_code, const std::string& message) const noexcept;

private:
    std::string m_json;
    std::string m_output;
};

} // namespace wlb::reports
