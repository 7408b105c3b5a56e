// wlbtune: the executable is the library plus this main(). The one place that catches errors,
// prints them and maps them to the exit codes documented in docs/cli.md.
#include "base/error.hpp"
#include "base/provenance.hpp"
#include "cli/command.hpp"
#include "kernels/device_query.hpp"
#include "wlb/build_info.hpp"

#include <cstdio>
#include <exception>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <vector>

namespace {

std::string version_text() {
    using namespace wlb::build_info;
    std::string s = fmt::format("wlbtune {}\n", version);
    s += fmt::format("  build: {} ({})\n", build_type, compiler);
    if (with_cuda) {
        s += fmt::format("  CUDA: on, toolkit {} (architectures {})\n", cuda_version,
                         cuda_architectures);
        s += fmt::format("  NCCL: {}\n", *nccl_version ? nccl_version : "not found");
        s += fmt::format("  CUPTI: {}\n", *cupti_version ? cupti_version : "not found");
    } else {
        s += "  CUDA: off (NCCL, CUPTI: off)\n";
    }
    s += fmt::format("  MPI: {}\n",
                     with_mpi ? fmt::format("on (MPI standard {})", mpi_version) : "off");
    auto devices = wlb::kernels::query_devices();
    if (devices.devices.empty()) {
        s += fmt::format("  devices: none ({})\n", devices.reason);
    } else {
        for (const auto& d : devices.devices)
            s += fmt::format("  device {}: {} (sm_{}{}, {:.1f} GiB, {} SMs)\n", d.index, d.name,
                             d.compute_major, d.compute_minor,
                             static_cast<double>(d.memory_bytes) / (1024.0 * 1024.0 * 1024.0),
                             d.multiprocessors);
    }
    return s;
}

} // namespace

int main(int argc, char** argv) {
    wlb::set_command_line(argc, argv);
    CLI::App app{"wlbtune: profile and tune workload balance of long-context LLM training with "
                 "4D parallelism (TP, CP, PP, DP)",
                 "wlbtune"};
    app.footer("Exit codes: 0 ok, 1 internal error, 2 usage, 3 bad input, 4 runtime failure.\n"
               "Run 'wlbtune <command> --help' for a command's options.");
    bool show_version = false;
    app.add_flag("--version", show_version, "Print the version and the build's options");
    app.require_subcommand(0, 1);
    app.option_defaults()->always_capture_default(); // every option's help shows its default

    wlb::cli::command_output out; // where the chosen command's reports, and its error, go
    std::vector<wlb::cli::registered_command> commands = {
        wlb::cli::register_layout(app, out),    wlb::cli::register_data(app, out),
        wlb::cli::register_pack(app, out),      wlb::cli::register_simulate(app, out),
        wlb::cli::register_shard(app, out),     wlb::cli::register_run(app, out),
        wlb::cli::register_tune(app, out),      wlb::cli::register_analyze(app, out),
        wlb::cli::register_calibrate(app, out),
    };
    // A user's own job, and capture on demand (docs/profile.md).
    commands.push_back(wlb::cli::register_profile(app, out));
    commands.push_back(wlb::cli::register_trigger(app, out));

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        if (e.get_exit_code() == 0) // --help and friends
            return app.exit(e);
        // A value an option's check refused is bad input (exit 3); anything else about the
        // command line's shape is usage (exit 2). Both name the command's --help.
        const bool bad_value = dynamic_cast<const CLI::ValidationError*>(&e) != nullptr;
        std::string command;
        for (const auto* sub : app.get_subcommands())
            command = " " + sub->get_name();
        fmt::print(stderr, "wlbtune: error: {}\nRun 'wlbtune{} --help' for the options.\n",
                   e.what(), command);
        return static_cast<int>(bad_value ? wlb::exit_code::bad_input : wlb::exit_code::usage);
    }
    if (show_version) {
        fmt::print("{}", version_text());
        return 0;
    }
    try {
        for (const auto& command : commands) {
            if (command.sub->parsed()) {
                command.run();
                return command.status ? command.status() : 0;
            }
        }
        fmt::print("{}", app.help());
        return static_cast<int>(wlb::exit_code::usage);
    } catch (const wlb::error& e) {
        out.error(e.kind(), static_cast<int>(e.code()), e.what());
        return static_cast<int>(e.code());
    } catch (const std::exception& e) {
        out.error("internal", 1, fmt::format("internal error: {}", e.what()));
        return static_cast<int>(wlb::exit_code::internal);
    }
}
