// What `wlbtune simulate` simulates beyond the job, written apart from the command: how many
// steps (-n,--steps), the faults to inject (--inject) and the data-parallel gradient reduction's
// buckets and overlap (--bucket-params, --no-overlap-grad-reduce). They fill the
// simulate_request directly.
#pragma once

#include "tuner/job/simulate_data_job.hpp"

#include <CLI/CLI.hpp>

namespace wlb::cli {

void add_simulation_options(CLI::App& sub, tuner::simulate_request& request);

} // namespace wlb::cli
