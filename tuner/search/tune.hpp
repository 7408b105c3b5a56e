// The tuner (issue [tuner]; design.md section 2: "tune = packer x sharder x simulator inside a
// search loop"): which packing and CP sharding make the user's steps fastest, under a delay
// budget, on the user's own documents. Every figure it returns is simulated (predicted by the
// cost model through the step plan and the simulator), never measured.
//
// Objective: the mean simulated step time over S steps of the sample (tuner::evaluate), after a
// warm-up of S/4 steps that is simulated but not counted (candidate_result), every candidate on
// the same documents (common random numbers: one document_set, replayed).
// Constraints (defaults from WLB-LLM): mean per-token delay <= 0.5 iterations; optionally the
// largest delay of any document; peak memory per rank (tuner/cost/memory_model.hpp) within the
// device's; tokens per step held (mean tokens per step >= 99% of the dp x pp x context budget).
//
// Strategy (tuner/search/tune_space.hpp for the space):
//   0. baselines and the paper's settings on the full sample: plain + per-seq, fixed-greedy
//      W = 1, 2, 4, 8 + per-seq, wlb 2 queues + adaptive (always among the candidates, so the
//      result is never predicted worse than a feasible one of them);
//   1. coarse pass with adaptive sharding over the coarse grid plus `random_points` random points
//      of the fine grid drawn with the seed, by successive halving: every point on S/4 steps,
//      the best third of the nearly feasible ones (delay within 25% of the limits: few steps
//      measure delay roughly) on S/2, the best third of those on S;
//   2. sharding: every sharding candidate on the best `sharding_finalists` packings (full S);
//   3. local refinement: hill climbing on the fine grid from the best `climbers` points (full S),
//      until no neighbour improves or the time is up;
//   4. stability: the full-S candidates' mean step times on the first and second half of the
//      sample's steps. The ranking is stable when choosing on either half and judging on the
//      other loses at most `max_regret` (1%); otherwise S doubles (while the data allows) and the
//      leading candidates are evaluated again. Kendall's tau between the halves is reported.
//   5. what each knob bought: the winner with one knob set back at a time (sharding to per-seq,
//      queues off, S_max to the context, micro-batches to pp, packing to plain).
//
// Determinism: the same documents, options and seed give the same result, whatever the number of
// threads (candidates are evaluated in parallel into fixed slots and ranked by step time, then
// by their key), unless the time budget cut the search short (tune_result::stopped_by_budget).
// Time: phases 1-4 stop starting work at 75% of the budget; phase 5 may start until 100%; a
// running evaluation is aborted at 100% (phase 0 always completes, so the answer is never worse
// than the baselines whatever the budget).
#pragma once

#include "runtime/plan/step_plan.hpp"
#include "tuner/cost/memory_model.hpp"
#include "tuner/search/evaluate.hpp"
#include "tuner/search/tune_space.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wlb::tuner {

class cost_model;

struct tune_constraints {
    double max_mean_delay = 0.5;      ///< iterations per token (WLB-LLM: 0.5, no loss penalty)
    std::int64_t max_delay_steps = 0; ///< largest delay of any token in steps; 0: no limit
    double memory_gbytes = 0.0;       ///< per rank; 0: the hardware's
    double min_step_tokens_fraction = 0.99; ///< mean tokens per step / the step budget
};

/// Where the search is, for a progress line.
struct tune_progress {
    std::string phase; ///< "baselines", "coarse S/4", "sharding", "refine", "stability", ...
    std::int64_t done = 0;
    std::int64_t total = 0;
    std::int64_t evaluated = 0; ///< candidate evaluations so far
    double elapsed_seconds = 0.0;
    double best_step_seconds = 0.0; ///< 0 while none is feasible
    std::string best;
};

struct tune_options {
    tune_constraints constraints;
    std::uint64_t seed = 1;
    double time_budget_seconds = 60.0;
    int threads = 0; ///< 0: std::thread::hardware_concurrency()
    /// Steps per evaluation at the start (0: min(256, what the documents hold)); doubled while
    /// the ranking is unstable, up to max_sample_steps and what the documents hold.
    std::int64_t sample_steps = 0;
    std::int64_t max_sample_steps = 1024;
    bool vary_micro_batches = true;
    /// tune --max-delay: every wlb candidate's queues release a document that waited this many
    /// steps (packing_config::max_delay_steps), and no candidate may delay one longer
    /// (constraints.max_delay_steps is set to it by tune_job). 0: no bound.
    std::int64_t max_delay = 0;
    int random_points = 8;
    int sharding_finalists = 4;
    int climbers = 3;
    double max_regret = 0.01;
    runtime::plan_options plan;
    memory_options memory; ///< memory_gbytes is overridden by constraints.memory_gbytes when set
    /// Called on the calling thread, at least every 0.2 s while the search runs.
    std::function<void(const tune_progress&)> progress;
};

/// One candidate's figures on the sample (all simulated but the constraint checks' inputs,
/// which are the packer's exact delays and token counts).
/// Every figure but cp_imbalance is over the steady-state window [warmup_steps, steps): the
/// first quarter of the steps is packed, sharded and simulated but not counted, because outlier
/// queues start empty (a run's first steps lack the long documents the queues hold back).
/// Delays are those of the documents packed in the window.
struct candidate_result {
    candidate config;
    std::string name;
    std::int64_t steps = 0;        ///< simulated
    std::int64_t warmup_steps = 0; ///< not counted (steps / 4, none below 16 steps)
    double mean_step_seconds = 0.0;
    double first_half_seconds = 0.0;  ///< mean over the window's first half
    double second_half_seconds = 0.0; ///< mean over its second half
    double imbalance = 1.0;           ///< packing: mean over steps of max/mean predicted fwd
    double cp_imbalance = 1.0;        ///< sharding: weighted attention imbalance (all steps)
    double bubble_fraction = 0.0;     ///< mean over steps
    double delay_mean = 0.0;          ///< iterations per token
    double delay_p99 = 0.0;
    double delay_max = 0.0;
    double mean_step_tokens = 0.0;
    std::int64_t step_budget_tokens = 0;
    std::int64_t waiting_documents_at_end = 0;
    double memory_peak_gbytes = 0.0;
    bool documents_exhausted = false;
    bool feasible = false;
    std::string infeasible;       ///< why not, "" when feasible
    bool nearly_feasible = false; ///< within 25% of the delay limits (the early rungs' test)
};

/// What one knob of the winner is worth: the winner with that knob set back.
struct knob_effect {
    std::string knob;     ///< "sharding", "outlier queues", "S_max", "micro-batches", "packing"
    std::string tuned;    ///< the winner's value
    std::string reverted; ///< the value it was set back to
    candidate_result without;
    /// without.mean_step_seconds / winner's: how much slower the step is without the knob.
    double slowdown = 1.0;
};

struct ranking_stability {
    std::int64_t steps_per_half = 0;
    int candidates = 0;       ///< feasible candidates evaluated on the full sample
    double kendall_tau = 1.0; ///< between their first-half and second-half mean step times
    /// Choose the best on one half, judge on the other: the relative loss against the best
    /// there, the worse of the two directions.
    double regret = 0.0;
    bool stable = true;
    int growths = 0; ///< times the sample was doubled
};

struct tune_result {
    candidate_result winner;
    candidate_result plain;        ///< plain + per-seq
    candidate_result fixed_greedy; ///< the fastest feasible fixed-greedy window (W=1 if none)
    candidate_result paper;        ///< wlb 2 queues + adaptive
    std::vector<candidate_result> runners_up; ///< the next best feasible, best first
    /// Every distinct candidate the search evaluated, each on the largest sample it reached
    /// (those screened out early ran on fewer steps than sample_steps: their figures are not
    /// comparable with the rest); the most steps first, then by step time.
    std::vector<candidate_result> evaluated;
    std::vector<knob_effect> knobs;
    ranking_stability stability;
    search_space space;
    memory_estimate winner_memory;
    std::int64_t sample_steps = 0;
    std::int64_t sample_documents = 0; ///< documents of the set the evaluations drew from
    std::int64_t evaluations = 0;
    int threads = 1;
    double elapsed_seconds = 0.0;
    bool stopped_by_budget = false;
    std::vector<std::string> notes; ///< what the user should know (relaxed constraints, ...)

    /// plain / winner step time (> 1: the winner is faster).
    [[nodiscard]] double speedup_over(const candidate_result& baseline) const noexcept {
        return winner.mean_step_seconds > 0.0
                   ? baseline.mean_step_seconds / winner.mean_step_seconds
                   : 0.0;
    }
};

/// A time budget as users write it: "60s", "90" (seconds), "2m", "1.5m", "500ms". Throws
/// wlb::input_error naming `what` and the text.
[[nodiscard]] double parse_seconds(std::string_view text, std::string_view what);

/// Tunes packing and sharding for `documents` (materialize_documents of the user's stream)
/// with the model, hardware and layout of `costs` and the context `context_tokens`. Throws
/// wlb::input_error when the documents cannot fill one step.
tune_result tune(const cost_model& costs, std::int64_t context_tokens,
                 const document_set& documents, const tune_options& options);

/// Evaluates one candidate on `steps` steps of `documents` and checks it against the
/// constraints (the tuner's inner call; tests and benchmarks use it for out-of-sample checks).
candidate_result evaluate_candidate(const cost_model& costs, const document_set& documents,
                                    const candidate& c, std::int64_t steps,
                                    const tune_constraints& constraints, const memory_model& memory,
                                    const runtime::plan_options& plan = {});

/// The steps `documents` can fill for every candidate: the step budget's count in its tokens,
/// less the margin of tokens_for_steps (outlier queues and windows hold documents back); for
/// an incomplete set (a prefix of a longer stream) as many as its margin allows.
[[nodiscard]] std::int64_t available_steps(const document_set& documents, std::int64_t step_tokens);

} // namespace wlb::tuner
