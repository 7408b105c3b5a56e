// Straggler detection, two ways:
//
//   relative speed (as NVIDIA Resiliency Extension scores GPUs): each rank's time on the same
//     kernels as its peers. Same kernels = same name, and where the source ties them to a
//     micro-batch, the same step, DP replica, micro-batch, model chunk and pass (peers of one
//     replica process the same tokens). A rank's relative time is the median, over the kernels
//     it shares with at least one peer, of its median duration over the peers' median. Only
//     work that does not depend on the data's attention pattern counts (linear and other
//     compute; attention differs between CP peers by design).
//   last arrival (as TraceLens): in each matched collective, the member that arrives last keeps
//     the others waiting; per rank, how often it was last and the wait it imposed (its arrival
//     minus the mean arrival of the others), when that exceeds 1 us.
#pragma once

#include "profiler/ingest/collectives.hpp"
#include "profiler/ingest/job_trace.hpp"

#include <cstdint>
#include <vector>

namespace wlb::profiler {

struct rank_speed {
    int rank = 0;
    double relative_time = 1.0; ///< 1.2: 20% slower than its peers on the same kernels
    std::int64_t kernels = 0;   ///< kernel kinds compared
};

struct rank_arrivals {
    int rank = 0;
    std::int64_t last_arrivals = 0;
    std::int64_t collectives = 0; ///< matched collectives it took part in
    double wait_imposed_s = 0.0;  ///< summed over the collectives it arrived last at
};

struct step_stragglers {
    std::int64_t step = 0;
    std::vector<rank_speed> speed;       ///< every rank present, by rank
    std::vector<rank_arrivals> arrivals; ///< every rank present, by rank
};

struct straggler_report {
    std::vector<step_stragglers> steps;
    std::vector<rank_speed> speed;       ///< over all steps
    std::vector<rank_arrivals> arrivals; ///< over all steps
};

straggler_report find_stragglers(const job_trace& job, const step_index& index,
                                 const std::vector<collective_instance>& instances);

} // namespace wlb::profiler
