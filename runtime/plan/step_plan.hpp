// The step plan (design.md section 2): from a layout, a pipeline schedule and a sharded global
// batch, the ordered operations of every rank and their dependencies, with durations from a
// duration_model. One plan serves the simulator, and through it the tuner, `simulate` and the
// what-if attribution (which rewrites durations and re-runs it).
//
// Symmetry. The TP ranks inside one CP rank hold the same tokens and meet in a TP collective
// in every layer, so they run in lock step: the plan holds one *unit* per (cp, pp, dp)
// coordinate, standing for its whole TP group (represented by its TP rank 0), and the trace
// replicates a unit's events to its TP peers. A fault on any TP rank slows its whole unit,
// which is what the per-layer TP collectives do to a real TP group.
//
// Aggregation: per stage, with the CP synchronization of per-layer all-gathers kept exact.
// A stage's L identical layers on one micro-batch become one `layers` operation per CP rank,
// joined in a group with its CP peers. Every layer starts with a CP collective (forward: an
// all-gather of keys and values; backward: a reduce-scatter of their gradients)
// across the CP group, which no CP rank can finish before the slowest peer arrives; after the
// first layer the peers therefore advance at the pace of the slowest one:
//     T0     = latest arrival of a CP peer at the stage's first all-gather
//     end_c  = T0 + L * comm + (L - 1) * max_c' w_c' + w_c
// where w_c is CP rank c's per-layer work (linear + attention + TP collectives) and comm the
// per-layer CP collective time. The stage time is the sum over layers of the max over CP peers,
// not the max of per-rank sums, and one operation per stage instead of one per layer keeps a
// 256-rank step to a few thousand operations (the tuner simulates thousands of steps). The
// trace expands each `layers` operation back into its per-layer slices.
//
// What a rank runs, in order, for each slot of its pipeline order (runtime/pipeline_schedule):
//   forward:  [recv activation] -> layers (fwd) -> [output layer, last chunk] -> [send]
//   backward: [recv gradient] -> [output layer bwd, last chunk] -> layers (bwd) -> [send]
// Point-to-point sends are eager (the receiver's buffer is posted, as Megatron's batched
// isend/irecv): a send occupies its rank for the transfer; a receive blocks until the data has
// arrived. The gradients of a model chunk are reduced across the DP x CP group (CP ranks hold
// the same weights) in buckets on a separate DP stream: each bucket is all-reduced as soon as
// the chunk's last backward has passed its layers (overlapped with the rest of the backward),
// or all after the backward when overlap is off. The optimizer step waits for the last bucket.
// Not modelled: activation recomputation, the distributed optimizer's parameter all-gather,
// the input embedding's compute (its parameters are reduced), data loading.
#pragma once

#include "runtime/parallel/batch.hpp"
#include "runtime/parallel/layout.hpp"
#include "runtime/parallel/pipeline_schedule.hpp"
#include "runtime/plan/duration_model.hpp"
#include "runtime/trace/trace.hpp"

#include <cstdint>
#include <string_view>
#include <vector>

namespace wlb::runtime {

struct plan_options {
    schedule_options schedule;
    stage_partition partition;   ///< empty: "even" over pp * vpp chunks
    double bucket_params = 40e6; ///< DP gradient bucket size, parameters per TP rank
    bool overlap_grad_reduce = true;
    /// Per model chunk (P * V entries): the number of DP gradient buckets, overriding the count
    /// bucket_params gives (0: the chunk reduces nothing). Empty: computed. The what-if
    /// attribution uses it to rebuild a measured step's buckets.
    std::vector<int> chunk_buckets;
};

enum class op_kind : std::uint8_t {
    compute,    ///< local work: output layer, optimizer
    layers,     ///< L identical layers of one micro-batch, CP-synchronized (see above)
    send,       ///< point-to-point send; `peer` is its recv
    recv,       ///< blocks until `peer` (the send) has finished
    collective, ///< over a group: all members arrive, then `seconds` for everyone
};

/// Per-layer seconds of one unit for one micro-batch and pass.
struct layer_cost {
    double linear_seconds = 0.0;
    double attention_seconds = 0.0;
    double tp_seconds = 0.0; ///< two all-gathers and two reduce-scatters across TP
    [[nodiscard]] double compute_seconds() const noexcept {
        return linear_seconds + attention_seconds;
    }
};

struct plan_op {
    op_kind kind = op_kind::compute;
    lane where = lane::compute;
    phase ph = phase::none;
    int unit = 0;
    int micro_batch = -1;
    int stage = -1;         ///< pp rank
    int virtual_stage = -1; ///< model chunk on the pp rank
    int layers = 0;         ///< kind layers: number of identical layers
    int cost = -1;          ///< kind layers: index into step_plan::costs
    /// compute / send / collective: the duration; layers: the per-layer CP collective time
    /// (all-gather of keys and values forward; reduce-scatter of their gradients backward).
    double seconds = 0.0;
    int group = -1; ///< layers / collective: index into step_plan::groups
    /// A cross-stream dependency: recv -> its send; DP bucket -> the layers op whose gradients
    /// it reduces (ready after `after_layers` of its layers); optimizer -> the last DP bucket.
    int peer = -1;
    int after_layers = 0; ///< 0: after `peer` ends
    double bytes = 0.0;   ///< payload of a transfer or collective (per rank)
    double flops = 0.0;
    std::string_view name; ///< static text
};

/// One simulated TP group: coordinates (cp, pp, dp) and its representative global rank.
struct plan_unit {
    int rank = 0; ///< the TP rank 0 of the group
    coords where;
    std::vector<int> main; ///< op ids in order: compute, TP, CP, PP
    std::vector<int> dp;   ///< op ids in order: gradient buckets
};

struct step_plan {
    layout job_layout{1, 1, 1, 1};
    std::int64_t step = 0;
    stage_partition partition;
    std::string schedule;
    std::vector<plan_op> ops;
    std::vector<layer_cost> costs;
    std::vector<std::vector<int>> groups; ///< member op ids, one per member unit
    std::vector<plan_unit> units;
    std::vector<int> micro_batches;                ///< per DP replica
    std::vector<std::vector<std::int64_t>> tokens; ///< [dp][micro-batch] total tokens

    /// Unit index of (cp, pp, dp): cp + CP * (pp + PP * dp).
    [[nodiscard]] int unit_of(int cp, int pp, int dp) const noexcept {
        return cp + job_layout.cp() * (pp + job_layout.pp() * dp);
    }
    /// The unit a global rank belongs to.
    [[nodiscard]] int unit_of_rank(int rank) const;
};

/// Builds the plan. Preconditions checked with wlb::input_error: one replica per DP rank,
/// every micro-batch sharded over exactly CP ranks, at least one micro-batch per replica, a
/// partition with pp * vpp chunks summing to the model's layers, and a schedule that fits.
step_plan build_step_plan(const layout& l, const sharded_step& batch, const duration_model& model,
                          const plan_options& options = {});

} // namespace wlb::runtime
