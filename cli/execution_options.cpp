#include "cli/execution_options.hpp"

#include "cli/command.hpp"
#include "runtime/device/attention_choice.hpp"

namespace wlb::cli {

CLI::Option* add_precision_option(CLI::App& sub, std::string& precision, const std::string& help) {
    return sub.add_option("--precision", precision, help)
        ->check(CLI::IsMember({"float", "double"}));
}

void execution_option_set::add_backend(CLI::App& sub) {
    sub.add_option("--backend", m_backend, "Execution backend: cpu or cuda");
}

void execution_option_set::add_rest(CLI::App& sub) {
    add_precision_option(sub, m_precision, "Numbers of the cpu backend: float or double");
    sub.add_option("--watchdog", m_watchdog_seconds,
                   "Seconds a collective or receive may take before the job is aborted")
        ->check(positive());
    sub.add_flag("--emulate", m_emulate,
                 "cuda: run every rank of the layout in this process on one GPU, one rank at a "
                 "time, with real data and kernels; transfers as device copies");
    sub.add_option("--emulated-comm", m_emulated_comm,
                   "--emulate: time transfers by their measured device copies or by the cost "
                   "model")
        ->check(CLI::IsMember({"measured", "modelled"}));
    sub.add_option("--attention", m_attention,
                   "cuda: attention kernels: auto, cudnn, mma (ours, tensor cores) or simt "
                   "(ours, scalar)");
    sub.add_option("--device", m_device,
                   "cuda: CUDA device (default: the launcher's node-local rank; --emulate: 0)");
    sub.add_flag("--no-cupti", m_no_cupti,
                 "cuda: no CUPTI capture beside the trace (NVTX ranges neither)");
}

void execution_option_set::apply(tuner::run_request& request) const {
    request.backend = runtime::parse_backend(m_backend);
    request.device = {m_emulate, runtime::parse_attention_choice(m_attention), m_device,
                      m_watchdog_seconds};
    request.comm = m_emulated_comm == "modelled" ? tuner::emulated_comm::modelled
                                                 : tuner::emulated_comm::measured;
    request.numbers = runtime::parse_precision(m_precision);
}

std::shared_ptr<profiler::run_capture>
execution_option_set::capture(const tuner::run_request& request) const {
    if (request.backend != runtime::backend_kind::cuda || request.trace_dir.empty() || m_no_cupti)
        return nullptr;
    return profiler::run_capture::make_default();
}

} // namespace wlb::cli
