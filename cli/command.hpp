// Subcommand registration. Each cli/cmd_<name>.cpp defines one register_<name>() that adds its
// subcommand and options to the app and returns the function to run once parsing succeeded.
// cli/ holds no logic: options -> job spec -> library call -> report.
#pragma once

#include "reports/output.hpp"

#include <CLI/CLI.hpp>
#include <functional>
#include <string>

namespace wlb::cli {

/// A subcommand and what to run when it was chosen.
struct registered_command {
    CLI::App* sub = nullptr;
    std::function<void()> run;
    /// The process's exit status once run() returned (unset: 0). `wlbtune profile` passes its
    /// command's status through.
    std::function<int()> status = {};
};

/// Every register_<name> takes the app and the command's output: where its JSON report goes is
/// where cli/main.cpp writes the error report when the command fails.
using command_output = reports::command_output;

registered_command register_layout(CLI::App& app, command_output& out);
registered_command register_data(CLI::App& app, command_output& out);
registered_command register_pack(CLI::App& app, command_output& out);
registered_command register_simulate(CLI::App& app, command_output& out);
registered_command register_shard(CLI::App& app, command_output& out);
registered_command register_run(CLI::App& app, command_output& out);
registered_command register_tune(CLI::App& app, command_output& out);
registered_command register_analyze(CLI::App& app, command_output& out);
registered_command register_calibrate(CLI::App& app, command_output& out);
registered_command register_profile(CLI::App& app, command_output& out);
registered_command register_trigger(CLI::App& app, command_output& out);

/// Checks of a number option with plain messages ("--steps: must be >= 0, found -1"): finite,
/// and >= 0 or > 0. A value they refuse is bad input (exit 3, cli/main.cpp), not usage.
CLI::Validator non_negative();
CLI::Validator positive();

/// Adds --json FILE|- for the command's report (`schema`).
CLI::Option* add_json_option(CLI::App& sub, std::string& path, const std::string& schema);
/// Adds --html FILE: an HTML report (reports/html/html_report.hpp) showing `what`.
CLI::Option* add_html_option(CLI::App& sub, std::string& path, const std::string& what);

/// Adds --progress: progress lines on stderr even where it is not a terminal.
CLI::Option* add_progress_flag(CLI::App& sub, bool& progress);

/// Adds --trace FILE (a Perfetto file) and --trace-dir DIR (a wlbtune.trace/1 directory).
void add_trace_options(CLI::App& sub, std::string& perfetto, std::string& trace_dir);

} // namespace wlb::cli
