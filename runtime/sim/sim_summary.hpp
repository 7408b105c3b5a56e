// What a simulated step says about itself: step time, pipeline bubble, compute imbalance, the
// critical path by category, and the slowest ranks with the reason the simulator knows
// (injected faults, CP shard imbalance, DP replica imbalance, stage partitioning). Figures
// here are simulated, and every report that prints them says so.
#pragma once

#include "runtime/plan/step_plan.hpp"
#include "runtime/sim/simulator.hpp"

#include <string>
#include <vector>

namespace wlb::runtime {

struct slow_rank_report {
    int rank = 0; ///< the TP rank 0 of the unit (its TP peers are identical)
    coords where;
    double busy_seconds = 0.0;
    double attention_seconds = 0.0;
    double exposed_comm_seconds = 0.0;
    double idle_seconds = 0.0;
    double busy_over_mean = 1.0; ///< busy / mean busy over all ranks
    std::string why;             ///< e.g. "CP shard imbalance: 18% more work than its CP peers"
};

struct step_summary {
    std::int64_t step = 0;
    double step_seconds = 0.0;
    double bubble_fraction = 0.0; ///< mean over ranks of idle / step time
    double exposed_comm_fraction = 0.0;
    double compute_imbalance = 1.0; ///< max busy / mean busy over ranks
    double max_busy_seconds = 0.0;
    /// Critical path seconds by category: "compute", "tp", "cp", "pp", "dp", "optimizer".
    std::vector<std::pair<std::string, double>> critical_path;
    std::vector<slow_rank_report> slowest; ///< the `top` ranks with the most busy time
};

step_summary summarize_step(const step_plan& plan, const sim_result& result,
                            const std::vector<fault>& faults, int top = 3);

} // namespace wlb::runtime
