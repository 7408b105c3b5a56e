#include "cli/simulation_options.hpp"

#include "cli/command.hpp"

namespace wlb::cli {

void add_simulation_options(CLI::App& sub, tuner::simulate_request& request) {
    sub.add_option("-n,--steps", request.steps,
                   "Steps: with --data, to pack (default 64, or the steps a tuned config was "
                   "tuned on); with --batch, the first N of the file (default: all)");
    sub.add_option("--inject", request.faults,
                   "Fault to inject (repeatable): slow-rank=R:F, slow-link=A-B:F, "
                   "heavy-mb=M[@D]:F, slow-stage=S:F");
    sub.add_option("--bucket-params", request.bucket_params,
                   "DP gradient bucket size in parameters per TP rank")
        ->check(positive());
    sub.add_flag_callback(
        "--no-overlap-grad-reduce", [&request] { request.overlap_grad_reduce = false; },
        "Reduce gradients after the backward instead of overlapping it");
}

} // namespace wlb::cli
