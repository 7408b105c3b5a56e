// A measured step in the step plan's terms (runtime/plan/step_plan.hpp), so that the one simulator
// can replay it and answer what-if questions (design.md section 2: no second scheduler).
//
// A *unit* is a TP group (cp, pp, dp coordinates), as in the plan. For each unit and each
// (micro-batch, model chunk, pass) *slot* the measurement gives: linear and attention work
// inside its layers, the TP collectives inside them, the output layer, the send of its output,
// and the CP collective per layer; per unit the optimizer; per stage and chunk the DP gradient
// buckets. Rules:
//   - compute of a unit = its slowest TP peer's (TP peers run in lock step); communication =
//     the quickest peer's (the others waited);
//   - a collective's transfer time = its shortest member (the last arrival did not wait);
//   - CP collectives per layer = the pure transfers of the slot's collectives over its layers;
//   - compute a source does not split (a Megatron forward-compute timer) counts as linear;
//   - the pipeline order is matched against 1F1B and interleaved 1F1B (any group size); the
//     stage partition is the count of per-layer slices (1 when the source times whole chunks);
//   - Megatron's params-all-gather (not in the plan) is added to the optimizer step.
#pragma once

#include "profiler/ingest/collectives.hpp"
#include "profiler/ingest/job_trace.hpp"
#include "runtime/parallel/pipeline_schedule.hpp"
#include "runtime/plan/step_plan.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace wlb::profiler {

struct slot_cost {
    double linear_s = 0.0;    ///< per-token work in the layers (GEMMs, element-wise, unsplit)
    double attention_s = 0.0; ///< attention kernels
    double tp_s = 0.0;        ///< TP collectives inside the layers
    double output_s = 0.0;    ///< output layer and loss (last chunk)
    double send_s = 0.0;      ///< sending the output to the next stage (transfer)
    double send_bytes = 0.0;  ///< its payload (0: unknown)
    double cp_comm_per_layer_s = 0.0; ///< the CP group's collective per layer (transfer)
    int layers = 0;
    bool present = false;
    std::int64_t first_start_ns = 0;
    [[nodiscard]] double layer_compute_s() const noexcept { return linear_s + attention_s; }
};

/// One DP gradient bucket: its transfer time and payload (0: unknown).
struct bucket_cost {
    double seconds = 0.0;
    double bytes = 0.0;
};

struct measured_step {
    std::int64_t step = 0;
    /// The layout replayed: the job's, or (a partial job) the job's with only the DP replicas
    /// in `replica_ids`.
    runtime::layout job_layout{1, 1, 1, 1};
    runtime::layout full_layout{1, 1, 1, 1}; ///< the job's
    /// The job's DP index of each replica replayed; empty: every replica, in order.
    std::vector<int> replica_ids;
    std::vector<int> micro_batches; ///< per DP replica
    int max_micro_batches = 0;
    runtime::stage_partition partition;
    /// False when the source does not time layers one by one (timers, annotated Kineto): the
    /// partition is then 1 per chunk, not the model's.
    bool partition_known = true;
    runtime::schedule_options schedule;
    std::string schedule_name; ///< "1f1b", "interleaved", "llama3:N"
    /// [unit][slot]: unit = step_plan::unit_of(cp, pp, dp); slot = slot_of(m, v, pass).
    std::vector<std::vector<slot_cost>> slots;
    std::vector<double> optimizer_s; ///< per unit
    /// [pp][virtual stage][bucket]: each DP gradient bucket, in order.
    std::vector<std::vector<std::vector<bucket_cost>>> buckets;
    double measured_step_s = 0.0; ///< first start to last end over the job
    std::int64_t start_ns = 0;    ///< where the step starts on the job clock

    [[nodiscard]] int units() const noexcept { return static_cast<int>(slots.size()); }
    [[nodiscard]] int slot_of(int micro_batch, int virtual_stage, runtime::phase ph) const {
        return (micro_batch * job_layout.vpp() + virtual_stage) * 2 +
               (ph == runtime::phase::bwd ? 1 : 0);
    }
    [[nodiscard]] int unit_of(int cp, int pp, int dp) const noexcept {
        return cp + job_layout.cp() * (pp + job_layout.pp() * dp);
    }
    /// The job's DP index of replica `dp` of job_layout.
    [[nodiscard]] int job_dp(int dp) const {
        return replica_ids.empty() ? dp : replica_ids[static_cast<std::size_t>(dp)];
    }
    /// The job's global rank of TP rank 0 of unit (cp, pp, dp) of job_layout.
    [[nodiscard]] int job_rank(int cp, int pp, int dp) const {
        return full_layout.rank_of({0, cp, pp, job_dp(dp)});
    }
};

/// Extracts step `step` of the DP replicas `replicas` (the job's DP indices, ascending; empty:
/// every replica). `instances` are the job's matched collectives of that step. Returns nullopt
/// and says why when the step cannot be replayed (a unit without a trace, a slot missing, an
/// order that no schedule explains).
std::optional<measured_step> measure_step(const job_trace& job, const step_index& index,
                                          std::int64_t step,
                                          const std::vector<const collective_instance*>& instances,
                                          std::string& why, const std::vector<int>& replicas = {});

/// The step plan of `m` with its durations written in.
runtime::step_plan measured_plan(const measured_step& m);

/// Writes the durations of `m` into `plan` (built by measured_plan from the same structure).
void write_durations(const measured_step& m, runtime::step_plan& plan);

} // namespace wlb::profiler
