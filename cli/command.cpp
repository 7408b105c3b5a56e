#include "cli/command.hpp"

#include <cerrno>
#include <cmath>
#include <cstdlib>

namespace wlb::cli {
namespace {

CLI::Validator number_at_least(double least, bool strictly, const char* name) {
    return CLI::Validator(
        [least, strictly](std::string& text) -> std::string {
            char* end = nullptr;
            errno = 0;
            const double v = std::strtod(text.c_str(), &end);
            if (text.empty() || end != text.c_str() + text.size() || errno == ERANGE ||
                !std::isfinite(v))
                return "expected a number, found \"" + text + "\"";
            if (strictly ? !(v > least) : !(v >= least))
                return std::string("must be ") + (strictly ? "> " : ">= ") +
                       (least == 0.0 ? "0" : std::to_string(least)) + ", found " + text;
            return {};
        },
        "", name);
}

} // namespace

CLI::Validator non_negative() {
    return number_at_least(0.0, false, "NON_NEGATIVE");
}

CLI::Validator positive() {
    return number_at_least(0.0, true, "POSITIVE");
}

CLI::Option* add_json_option(CLI::App& sub, std::string& path, const std::string& schema) {
    return sub.add_option("--json", path,
                          "Write the report (" + schema +
                              ") to this file, or - to print it on stdout instead of the tables");
}

CLI::Option* add_html_option(CLI::App& sub, std::string& path, const std::string& what) {
    return sub.add_option("--html", path,
                          "Write an HTML report to this file: " + what +
                              " (one self-contained page; opens offline)");
}

CLI::Option* add_progress_flag(CLI::App& sub, bool& progress) {
    return sub.add_flag("--progress", progress,
                        "Print progress lines on stderr even when it is not a terminal");
}

void add_trace_options(CLI::App& sub, std::string& perfetto, std::string& trace_dir) {
    sub.add_option("--trace-dir", trace_dir,
                   "Write the job's trace here (wlbtune.trace/1: one JSONL file per rank, a "
                   "manifest and the steps' batches); wlbtune analyze reads it");
    sub.add_option("--trace", perfetto,
                   "Also write it as a Perfetto trace file (.gz: compressed; open in "
                   "https://ui.perfetto.dev)");
}

} // namespace wlb::cli
