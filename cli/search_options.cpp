#include "cli/search_options.hpp"

#include "cli/command.hpp"

namespace wlb::cli {

void search_option_set::add(CLI::App& sub, tuner::tune_request& request) {
    auto& so = request.options;
    auto& c = so.constraints;
    sub.add_option("--max-documents", request.max_documents,
                   "Tune on the first N documents of the stream only (0: as many as needed)")
        ->check(non_negative());
    sub.add_option("--max-mean-delay", c.max_mean_delay,
                   "Constraint: mean delay per token in iterations (WLB-LLM: 0.5)")
        ->check(non_negative());
    sub.add_option("--max-delay-steps", c.max_delay_steps,
                   "Constraint: largest delay of any document in steps (0: no limit)")
        ->check(non_negative());
    sub.add_option("--max-delay", so.max_delay,
                   "Bound the longest wait: wlb candidates' queues release a document that "
                   "waited K steps (spread over the micro-batches), and no candidate may "
                   "delay one longer (0: no bound)")
        ->check(non_negative());
    sub.add_option("--memory-gb", c.memory_gbytes,
                   "Constraint: memory per rank in GB (0: the hardware's; 10% is reserved)")
        ->check(non_negative());
    sub.add_option("--min-step-tokens", c.min_step_tokens_fraction,
                   "Constraint: mean tokens per step as a fraction of dp x pp x context")
        ->check(positive());
    sub.add_option("--time-budget", m_time_budget,
                   "Stop searching after this long (60s, 2m, 90); baselines always complete");
    sub.add_option("--seed", so.seed, "Seed of the search's random points (deterministic)")
        ->check(non_negative());
    sub.add_option("--threads", so.threads, "Evaluation threads (0: one per core)")
        ->check(non_negative());
    sub.add_option("--steps", so.sample_steps,
                   "Steps per evaluation (0: 256 or what the data holds, doubled while the "
                   "ranking is unstable)")
        ->check(non_negative());
    sub.add_option("--max-steps", so.max_sample_steps, "Most steps per evaluation")
        ->check(positive());
    sub.add_flag("--fixed-micro-batches", m_fixed_micro_batches,
                 "Keep pp micro-batches per replica (do not search 2 pp and 4 pp at the same "
                 "step budget)");
}

void search_option_set::apply(tuner::tune_request& request) const {
    request.options.time_budget_seconds = tuner::parse_seconds(m_time_budget, "--time-budget");
    request.options.vary_micro_batches = !m_fixed_micro_batches;
}

} // namespace wlb::cli
