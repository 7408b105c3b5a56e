// Evaluating one candidate configuration (a packing policy with its knobs x a CP sharding
// policy) on a fixed set of documents: pack N steps, shard every micro-batch over the CP ranks,
// simulate every step with the step plan and the simulator, and return the predicted
// (simulated) step times with the packing and sharding measures. The one loop behind the
// tuner's inner loop (issue [tuner]), `wlbtune simulate --data` and `simulate --compare`.
//
// Use:
//   const cost_model costs(runtime::load_model("7b"), load_hardware("h100-sxm"), layout);
//   evaluation_config c;                             // packing, sharding, steps, plan options
//   c.packing = make_packing_config(knobs, layout);  // knobs as the CLI takes them
//   auto stream = open_document_stream("default", {.context_tokens = 131072});
//   const auto docs =
//       materialize_documents(stream, tokens_for_steps(c.steps, c.packing.step_tokens()));
//   const evaluation e = evaluate(costs, docs, c);  // e.mean_step_seconds, e.packing, ...
//
// Common random numbers: the documents are read once into a document_set and every candidate
// replays exactly that sequence (same ids, lengths and order), so two candidates' step times
// differ only by what the candidates do with the same documents.
//
// Deterministic: the same cost model, documents and configuration give bit-identical step
// times, summaries and measures. The one exception is wall-clock packing time
// (step_measures::pack_seconds, run_summary::mean/max_pack_seconds), which is measured.
//
// Cost: packing (microseconds per step), sharding (microseconds per micro-batch; hybrid with an
// auto threshold is the slowest) and one plan build + simulation per step. Measured by
// tests/bench/bench_evaluate.cpp (docs/benchmarks.md): 64 steps of 7B-128K (64 ranks) take
// ~0.017 s per wlb + adaptive candidate on the shared dev VM, 70B-128K (256 ranks) ~0.033 s,
// wlb + hybrid auto ~0.3-0.6 s.
//
// Threads: evaluate() keeps no state between calls and only reads the cost model and the
// document set, so candidates may run on parallel threads over the same ones; `progress` is
// called on the evaluating thread.
#pragma once

#include "runtime/parallel/batch.hpp"
#include "runtime/parallel/layout.hpp"
#include "runtime/plan/duration_model.hpp"
#include "runtime/plan/step_plan.hpp"
#include "runtime/sim/fault.hpp"
#include "runtime/sim/sim_summary.hpp"
#include "runtime/trace/trace.hpp"
#include "tuner/packing/packer.hpp"
#include "tuner/packing/packing_knobs.hpp"
#include "tuner/packing/packing_measures.hpp"
#include "tuner/sharding/shard_run.hpp"
#include "tuner/sharding/sharding.hpp"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace wlb::tuner {

class cost_model;
class document_stream;

/// Documents read once from a stream, replayed identically to every candidate.
struct document_set {
    /// In stream order; ids are stream positions; drawn_step is set when a packer draws them.
    std::vector<runtime::document> documents;
    std::int64_t tokens = 0;
    /// True when the set holds the whole stream (it ended before the token target): running
    /// out of documents is then the data's end, not a too-small set.
    bool complete = false;
    std::string description; ///< the stream's describe()
};

/// Rewinds `stream` and reads documents until the set holds at least `min_tokens` tokens (a
/// document is never cut) or the stream ends. min_tokens <= 0 reads the whole stream.
document_set materialize_documents(document_stream& stream, std::int64_t min_tokens);

/// Tokens a document set should hold so that any packing policy can fill `steps` steps of
/// `step_tokens`: the steps' budget plus a margin for what packers hold back (outlier queues,
/// fixed-greedy windows of `window` steps): (steps + max(16, steps / 2) + 2 * window) *
/// step_tokens. A run that still runs out says so (evaluation::documents_exhausted).
[[nodiscard]] std::int64_t tokens_for_steps(std::int64_t steps, std::int64_t step_tokens,
                                            int window = 1);

/// One candidate and how to run it.
struct evaluation_config {
    packing_config packing; ///< replicas must equal the layout's dp
    sharding_spec sharding;
    /// Steps to pack and simulate (fewer if the documents end); 0: until the documents end.
    std::int64_t steps = 64;
    runtime::plan_options plan;
    std::vector<runtime::fault> faults; ///< validated against the layout by evaluate()
    bool keep_trace = false;
    int top_ranks = 3; ///< slowest ranks kept per step summary
    /// Durations for the simulator; nullptr: the cost model's (tuner::cost_duration_model).
    /// Packers and sharders always predict with the cost model.
    const runtime::duration_model* durations = nullptr;
    /// Called after each simulated step with (steps done, config.steps); may be empty.
    std::function<void(std::int64_t, std::int64_t)> progress;
    /// Called with every packed step before it is sharded (the batches evaluated, for tests
    /// and for checking a plan against them); may be empty.
    std::function<void(const runtime::global_batch&)> on_batch;
};

/// What one candidate did. Every seconds figure is simulated (predicted), except the measured
/// packing time in `packing`.
struct evaluation {
    std::string name;                         ///< "wlb 2q [24k,64k] S_max=192k + adaptive"
    packing_config packing_params;            ///< the packing the candidate ran
    sharding_spec sharding_params;            ///< the sharding it ran
    std::vector<double> step_seconds;         ///< simulated, per step
    std::vector<runtime::step_summary> steps; ///< per step: bubble, critical path, slow ranks
    double total_seconds = 0.0;
    double mean_step_seconds = 0.0; ///< total / steps (0 without steps)
    run_summary packing;            ///< imbalance, delay (mean/p50/p99/max), waiting documents
    std::vector<step_measures> packing_steps;
    shard_run_summary sharding; ///< CP imbalance, token balance, layouts applied
    std::int64_t documents_drawn = 0;
    /// The packer drew the last document of the set before the last step was packed: the
    /// final steps may be short (queues drained). Always false when steps were all full and
    /// the set still had documents.
    bool documents_exhausted = false;
    runtime::trace trace; ///< filled when keep_trace
};

/// "wlb 2q [24k,64k] S_max=192k + adaptive", "plain + per-seq", "... + hybrid >=16k".
std::string describe_candidate(const packing_config& p, const sharding_spec& s);

/// Packs config.steps steps of `documents` with config.packing, shards each micro-batch with
/// config.sharding, and simulates each step. `costs` gives the model, hardware and layout (and
/// the predictions packers and sharders balance). Throws wlb::input_error when the packing
/// config's replicas differ from the layout's dp, on an invalid packing config, a fault outside
/// the layout, or a plan that cannot be formed (schedule, partition).
evaluation evaluate(const cost_model& costs, const document_set& documents,
                    const evaluation_config& config);

} // namespace wlb::tuner
