// Where a captured process's steps are (design.md: a job's trace is per step). In order of
// preference (WLBTUNE_STEP_SOURCE=auto):
//
//   nvtx          the job's NVTX step ranges (profiler/capture/inject/nvtx_ranges.hpp)
//   profiler-api  each cudaProfilerStart .. cudaProfilerStop span is one step
//   nccl          the period of the NCCL kernel sequence: a training step issues the same
//                 collectives in the same order every step, and the GPU waits between steps
//                 (optimizer, data loading, the host's synchronization). The period is the
//                 shortest repeat of the kernel names whose cut falls, every period, on a gap
//                 between NCCL kernels clearly longer than the gaps inside the period; each
//                 step boundary is then placed in the middle of the longest idle stretch of the
//                 device between the two NCCL kernels around it. Only whole periods are steps:
//                 the kernels before the first (initialization) and after the last are left out.
//   none          one step holds everything
//
// The choice and why are returned in words, for the process's report and analyze's notes.
// Host code, no CUDA; tested on synthetic sequences.
#pragma once

#include "profiler/capture/activity.hpp"
#include "profiler/capture/inject/inject_config.hpp"
#include "profiler/capture/inject/nvtx_ranges.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace wlb::profiler {

struct nccl_period {
    std::size_t period = 0; ///< NCCL kernels per step
    std::size_t offset = 0; ///< index of the first NCCL kernel of a step, in [0, period)
    /// How clearly the cut gaps stand out: their 25th percentile over the 75th percentile of the
    /// gaps at the next most gap-like position of the period (>= min_separation when found).
    double separation = 0.0;
    /// Fraction of kernels that differ from the one a period earlier (at most nccl_max_mismatch
    /// of them, plus two: initialization, a cut).
    double mismatch = 0.0;
};

inline constexpr double nccl_min_separation = 1.5;
inline constexpr double nccl_max_mismatch = 0.05;

/// The period of a sequence of NCCL kernel names (interned as `symbols`, in start order) with
/// the gaps between consecutive kernels (`gaps_ns[i]`: from the end of kernel i to the start of
/// kernel i + 1; size symbols.size() - 1). Needs at least three periods. nullopt: none found.
[[nodiscard]] std::optional<nccl_period> find_nccl_period(const std::vector<std::int32_t>& symbols,
                                                          const std::vector<std::int64_t>& gaps_ns);

struct step_plan {
    step_source source = step_source::none;
    std::string description;           ///< which source, and why (for the report)
    std::vector<step_span> steps;      ///< in time order
    std::int64_t partial_left_out = 0; ///< nccl: incomplete periods not taken as steps
};

/// Steps from the NCCL kernels among `activities` (any order).
[[nodiscard]] step_plan steps_from_nccl(const std::vector<device_activity>& activities);

/// The steps by `wanted` (automatic: the first source in the order above that has any).
/// `step_names` says how NVTX step ranges were recognized (for the description).
[[nodiscard]] step_plan choose_steps(step_source wanted, const std::vector<step_span>& nvtx,
                                     const std::vector<step_span>& profiler_api,
                                     const std::vector<device_activity>& activities,
                                     const std::string& step_names);

} // namespace wlb::profiler
