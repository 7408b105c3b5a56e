// What-if attribution: how many seconds of each step each cause of imbalance costs.
//
// A measured step (profiler/analysis/measured_step.hpp) is replayed on the simulator with its
// measured durations (the *replay*), then again with one cause evened out at a time, and with all
// of them evened out together (the *ideal*). The seconds a cause costs = replay - replay with that
// cause evened out. Evening out keeps the total work and moves it, except for a slow worker
// (brought to its peers' speed) and communication (each transfer brought to its peers' time):
//
//   slow worker        a TP group (unit) slower than its peers on the same work: its linear
//                      time per layer over its CP peers' on the same micro-batch (DP peers'
//                      when cp = 1); that speed is divided out of its compute first, so that the
//                      other causes are measured on the work alone
//   PP packing         micro-batches within a DP replica: each scaled to the replica's mean
//                      micro-batch work (its split over CP ranks and stages kept)
//   CP sharding        CP peers within a micro-batch: each gets the mean over its CP group
//   DP imbalance       DP replicas: each replica's compute scaled to the mean replica total
//   stage partitioning pipeline stages: each stage's compute scaled to the mean stage total
//                      (output layer included); a partition that would do it is suggested
//   communication      each CP, TP, PP and DP transfer brought to the typical time of the same
//                      transfer elsewhere in the job (the lower median over its peers)
//
// Every figure the attribution gives is a replay on the simulator: labelled simulated what-if.
#pragma once

#include "profiler/analysis/measured_step.hpp"
#include "profiler/ingest/collectives.hpp"
#include "profiler/ingest/job_trace.hpp"
#include "runtime/plan/step_plan.hpp"
#include "runtime/sim/simulator.hpp"

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wlb::profiler {

enum class cause : std::uint8_t {
    pp_packing = 0,
    cp_sharding,
    dp_imbalance,
    stage_partitioning,
    slow_worker,
    communication
};
inline constexpr int cause_count = 6;
inline constexpr std::array<cause, cause_count> all_causes = {
    cause::pp_packing,         cause::cp_sharding, cause::dp_imbalance,
    cause::stage_partitioning, cause::slow_worker, cause::communication};

/// "pp_packing", "cp_sharding", "dp_imbalance", "stage_partitioning", "slow_worker",
/// "communication".
std::string_view cause_name(cause c) noexcept;
/// "PP packing", "CP sharding", "DP imbalance", "stage partitioning", "a slow worker",
/// "communication".
std::string_view cause_title(cause c) noexcept;

/// Something a cause involves: a rank, a stage, a replica, a micro-batch, a link; `factor` is
/// how far it is from even (1.25: 25% more work, or 25% slower, than its peers).
struct involvement {
    std::string what;
    double factor = 1.0;
    int rank = -1; ///< a global rank, where the involvement is one
};

struct cause_estimate {
    cause what = cause::pp_packing;
    double evened_step_s = 0.0;        ///< replay with this cause evened out
    double lost_s = 0.0;               ///< replay - evened (what the cause costs the step)
    std::vector<involvement> involved; ///< the largest first, at most 8
};

struct step_attribution {
    std::int64_t step = 0;
    bool attributed = false;
    std::string skipped_reason; ///< when not attributed
    double measured_s = 0.0;    ///< measured step time
    double replay_s = 0.0;      ///< simulated with the measured durations
    /// Simulated with every cause evened out: the fastest of all together, each alone, and the
    /// replay (evening interacts: all together can be slower than one alone, and the lost time
    /// must not read less than a single cause's).
    double ideal_s = 0.0;
    std::string schedule;
    std::array<cause_estimate, cause_count> causes{};
    std::vector<double> worker_speed; ///< per unit: 1 = as fast as its peers
    [[nodiscard]] double lost_s() const noexcept { return replay_s - ideal_s; }
};

/// The ideal timeline of one step, for the Perfetto export.
struct ideal_step {
    std::int64_t step = 0;
    std::int64_t start_ns = 0; ///< where the measured step starts on the job clock
    runtime::step_plan plan;
    runtime::sim_result result;
};

struct attribution_result {
    std::vector<step_attribution> steps;
    int attributed_steps = 0;
    double measured_s = 0.0; ///< sums over the attributed steps
    double replay_s = 0.0;
    double ideal_s = 0.0;
    std::array<double, cause_count> lost_s{}; ///< per cause, summed over attributed steps
    std::optional<cause> dominant;            ///< the cause that costs the most overall
    /// Stage partition that evens the stages out (for --partition), when stages differ.
    std::string suggested_partition;
    /// The measured partition ("2,2"): layers per model chunk, as --partition takes it; empty
    /// when the source does not time layers one by one.
    std::string partition;
    /// No whole-layer partition evens the stages better than the measured one (in every step
    /// where one could be computed).
    bool partition_is_closest = false;
    std::vector<ideal_step> ideal; ///< when asked for
    /// The DP replicas the what-if replays (the job's indices): every one, or in a partial job
    /// those with a trace of every pipeline stage and CP rank (the what-if replays whole
    /// replicas).
    std::vector<int> replicas;
    /// Empty when the what-if covers the whole job; else what it covers and what it leaves out
    /// (ranks, replicas), and why.
    std::string scope;
    [[nodiscard]] double lost_s_total() const noexcept { return replay_s - ideal_s; }
};

struct attribution_options {
    bool keep_ideal = false;
    /// Relative deviations below this are noise, not a cause (speeds, work shares).
    double noise = 0.02;
    /// Called with each attributed step as measured and its attribution (e.g. the check against
    /// the batches' predicted work, profiler/analysis/work_check.hpp).
    std::function<void(const measured_step&, const step_attribution&)> observe;
};

attribution_result attribute(const job_trace& job, const step_index& index,
                             const std::vector<collective_instance>& instances,
                             const attribution_options& options = {});

struct whatif_options {
    double noise = 0.02; ///< as attribution_options::noise
    /// Take every worker as fast as its peers (a step whose durations come from a model, e.g.
    /// the batches' predicted work, has no slow worker to divide out).
    bool even_workers = false;
};

/// The simulated time of step `m` with the causes in `evened` evened out (none: the replay).
double whatif_step_seconds(const measured_step& m, const std::vector<cause>& evened,
                           const whatif_options& options = {});

} // namespace wlb::profiler
