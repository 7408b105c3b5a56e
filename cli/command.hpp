// Subcommand registration. Each cli/cmd_<name>.cpp defines one register_<name>() that adds its
// subcommand and options to the app and returns the function to run once parsing succeeded.
// cli/ holds no logic: parse, call the library, print.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>

namespace wlb::cli {

/// Where a failure is reported besides stderr: commands with JSON output set this, and
/// cli/main.cpp writes the error there as a "wlbtune.error/1" document.
struct error_sink {
    bool json_stdout = false; ///< print the error JSON on stdout
    std::string json_path;    ///< or write it to this file
};

/// A subcommand and what to run when it was chosen.
struct registered_command {
    CLI::App* sub = nullptr;
    std::function<void()> run;
};

registered_command register_layout(CLI::App& app, error_sink& sink);
registered_command register_data(CLI::App& app, error_sink& sink);
registered_command register_pack(CLI::App& app, error_sink& sink);
registered_command register_simulate(CLI::App& app, error_sink& sink);
registered_command register_shard(CLI::App& app, error_sink& sink);
registered_command register_run(CLI::App& app, error_sink& sink);
registered_command register_tune(CLI::App& app, error_sink& sink);
registered_command register_analyze(CLI::App& app, error_sink& sink);

} // namespace wlb::cli
