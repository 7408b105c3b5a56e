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

/// Adds --json FILE|- for the command's report (`schema`).
CLI::Option* add_json_option(CLI::App& sub, std::string& path, const std::string& schema);
/// Adds --trace FILE (a Perfetto file) and --trace-dir DIR (a wlbtune.trace/1 directory).
void add_trace_options(CLI::App& sub, std::string& perfetto, std::string& trace_dir);

} // namespace wlb::cli
