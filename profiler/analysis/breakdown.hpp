// Where each rank's time went in each step: compute by class (attention, linear, other, and
// compute a source does not split), communication per lane (the TP, CP, PP and DP groups),
// exposed (no compute running at the same time) or overlapped, and idle.
//
// The step's window is job-wide: from the first start to the last end of any rank's events of
// that step (clocks aligned). Compute by class sums kernel (or timer) time; `compute_busy_s` is
// the union of compute intervals (streams may overlap). A communication interval is exposed
// where no compute runs; idle = window - union of compute and communication.
#pragma once

#include "profiler/ingest/job_trace.hpp"

#include <array>
#include <cstdint>
#include <vector>

namespace wlb::profiler {

struct comm_split {
    double total_s = 0.0;
    double exposed_s = 0.0;
    double overlapped_s = 0.0;
};

struct rank_breakdown {
    int rank = 0;
    double attention_s = 0.0;
    double linear_s = 0.0;
    double other_s = 0.0;
    double unsplit_s = 0.0; ///< compute the source does not split (Megatron forward-compute)
    double compute_busy_s = 0.0;
    std::array<comm_split, runtime::lane_count> comm{}; ///< index = lane (tp, cp, pp, dp used)
    double idle_s = 0.0;
    [[nodiscard]] double compute_s() const noexcept {
        return attention_s + linear_s + other_s + unsplit_s;
    }
};

struct step_breakdown {
    std::int64_t step = 0;
    std::int64_t start_ns = 0;
    std::int64_t end_ns = 0;
    std::vector<rank_breakdown> ranks; ///< the ranks present in the step, by rank
    [[nodiscard]] double seconds() const noexcept {
        return static_cast<double>(end_ns - start_ns) * 1e-9;
    }
};

std::vector<step_breakdown> compute_breakdown(const job_trace& job, const step_index& index);

} // namespace wlb::profiler
