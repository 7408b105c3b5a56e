// wlbtune tune's terminal report: the winner, the runners-up beside the baselines and the
// paper's settings, what each knob bought, and how the search went. Every step time in it is
// simulated (predicted by the cost model) and the report says so.
#pragma once

#include "tuner/job/tune_job.hpp"
#include "tuner/search/tune.hpp"
#include "tuner/spec/job_spec.hpp"

#include <cstdint>
#include <string>

namespace wlb::reports {

struct tune_context {
    std::string data; ///< the document stream's description
    std::int64_t documents = 0;
    std::int64_t tokens = 0;
    std::string layout;
    std::string model;
    std::string hardware;
    std::int64_t context_tokens = 0;
    double max_mean_delay = 0.5;
    std::int64_t max_delay_steps = 0;
};

std::string tune_text(const tune_context& ctx, const tuner::tune_result& r);

/// "wlb tune: [coarse 64 steps] 45/95  best 12.345 s  3.2 s" (one line, no newline).
std::string tune_progress_line(const tuner::tune_progress& p);

/// `wlbtune tune`'s terminal report (tune_text) and, when the tuned config was written to
/// `config_path`, how to apply it.
std::string tune_outcome_text(const tuner::job_spec& job, const tuner::tune_outcome& outcome,
                              const tuner::tune_options& options, const std::string& config_path);

} // namespace wlb::reports
