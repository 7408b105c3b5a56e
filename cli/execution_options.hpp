// How `wlbtune run` executes its steps, written apart from the command: the backend and its
// numbers (--backend, --precision), the device it runs on (--device, --emulate, --emulated-comm,
// --attention, --no-cupti) and the collectives' watchdog (--watchdog). Words are kept as the user
// wrote them and turned into the run_request's typed fields by apply(), after parsing.
// --precision is shared with `calibrate` (add_precision_option).
#pragma once

#include "profiler/capture/run_capture.hpp"
#include "runtime/comm/communicator.hpp"
#include "tuner/job/run_job.hpp"

#include <CLI/CLI.hpp>
#include <memory>
#include <string>

namespace wlb::cli {

/// Adds --precision float|double (the CPU backend's numbers) with `help`.
CLI::Option* add_precision_option(CLI::App& sub, std::string& precision, const std::string& help);

class execution_option_set {
public:
    /// Adds --backend first (before the job's options), then the rest after them (add_rest), so
    /// help lists them as it always has.
    void add_backend(CLI::App& sub);
    void add_rest(CLI::App& sub);
    /// After parsing: the backend, device, transfer timing and numbers into `request`.
    void apply(tuner::run_request& request) const;
    /// The CUPTI capture a cuda run writes beside its trace directory (null: a cpu run, no
    /// --trace-dir, or --no-cupti).
    [[nodiscard]] std::shared_ptr<profiler::run_capture>
    capture(const tuner::run_request& request) const;

private:
    std::string m_backend = "cpu", m_precision = "float", m_attention = "auto",
                m_emulated_comm = "measured";
    bool m_emulate = false, m_no_cupti = false;
    int m_device = -1;
    double m_watchdog_seconds = runtime::default_watchdog_seconds;
};

} // namespace wlb::cli
