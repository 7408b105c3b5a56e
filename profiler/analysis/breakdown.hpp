// Where each rank's time went in each step: compute by class (attention, linear, other, and
// compute a source does not split), memory copies, communication per lane (the TP, CP, PP and
// DP groups), exposed (no compute running at the same time) or overlapped, and idle. Computed
// from each rank's events as they were read (step_summary, profiler/ingest/rank_condense.hpp).
//
// The step's window is job-wide: from the first start to the last end of any rank's events of
// that step (clocks aligned). Compute by class sums kernel (or timer) time; `compute_busy_s` is
// the union of compute intervals (streams may overlap; memory copies and sets are not compute),
// `busy_s` the union of every interval off the host lane. A communication interval is exposed
// where no compute runs; idle = window - busy.
//
// HTA's temporal breakdown (idle, compute, non-compute per rank) over the same events is
// span_s - busy_s, compute_busy_s and busy_s - compute_busy_s, where span_s runs from the rank's
// first to its last event off the host lane in the step (HTA's kernel time); idle_s differs from
// HTA's idle by window - span_s, the time the rank waited for the rest of the job at the step's
// ends.
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
    double memory_s = 0.0;  ///< memory copies and sets (not compute)
    double compute_busy_s = 0.0;
    double busy_s = 0.0; ///< union of every interval off the host lane
    double span_s = 0.0; ///< first to last event off the host lane (HTA's kernel time)
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

std::vector<step_breakdown> compute_breakdown(const job_trace& job);

} // namespace wlb::profiler
