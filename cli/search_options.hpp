// What `wlbtune tune` searches and within which bounds, written apart from the command: the
// constraints every candidate must meet (--max-mean-delay, --max-delay-steps, --max-delay,
// --memory-gb, --min-step-tokens), how much data it reads (--max-documents) and how the search
// spends its time (--time-budget, --seed, --threads, --steps, --max-steps,
// --fixed-micro-batches). Numbers go to the tune_request directly; words are turned into it by
// apply(), after parsing.
#pragma once

#include "tuner/job/tune_job.hpp"

#include <CLI/CLI.hpp>
#include <string>

namespace wlb::cli {

class search_option_set {
public:
    void add(CLI::App& sub, tuner::tune_request& request);
    /// After parsing: --time-budget and --fixed-micro-batches into `request`.
    void apply(tuner::tune_request& request) const;

private:
    std::string m_time_budget = "60s";
    bool m_fixed_micro_batches = false;
};

} // namespace wlb::cli
