// `wlbtune simulate` as library calls: simulate the steps of a sharded batch file, or pack and
// shard the job's documents and simulate them, alone or beside WLB-LLM's comparison candidates
// on the same documents. Every step time is simulated (the cost model's prediction).
#pragma once

#include "runtime/plan/step_plan.hpp"
#include "runtime/sim/fault.hpp"
#include "tuner/search/compare_set.hpp"
#include "tuner/search/evaluate.hpp"
#include "tuner/search/simulate_job.hpp"
#include "tuner/spec/job_spec.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace wlb::tuner {

/// How to simulate, beside the job.
struct simulate_request {
    /// Steps: with data, to pack (std::nullopt: the tuned config's simulated steps, else 64);
    /// with a batch file, its first N (std::nullopt or 0: all).
    std::optional<std::int64_t> steps;
    bool compare = false; ///< run comparison_candidates(knobs) beside the job's configuration
    packing_knobs knobs;  ///< the comparison's knobs (the command line's, context from the job)
    std::vector<std::string> faults; ///< --inject specs, parsed and checked against the layout
    double bucket_params = 40e6;
    bool overlap_grad_reduce = true;
    bool keep_trace = false; ///< of the chosen candidate
    /// Called with (label, steps done, steps) while candidates are simulated; may be empty.
    std::function<void(const std::string&, std::int64_t, std::int64_t)> progress;
};

/// The plan options and faults of a simulation (what both inputs share), checked against the
/// job's layout and model before any data is read.
struct simulation_setup {
    runtime::plan_options plan;
    std::vector<runtime::fault> faults;
};
simulation_setup simulation_setup_of(const job_spec& job, const simulate_request& request);

struct simulate_data_outcome {
    simulation_setup setup;
    std::vector<candidate> candidates;
    std::vector<evaluation> results; ///< one per candidate, in order
    std::size_t chosen = 0;          ///< the candidate with candidate::chosen
    document_set documents;          ///< what every candidate ran on
    std::vector<wlb::input_identity> inputs;
};

/// The candidates simulate runs: with request.compare the comparison list, else the job's
/// packing and sharding alone ("chosen"). A job from a tuned config is the chosen one, listed
/// last as "tuned, chosen" after the comparison (which then keeps no chosen entry of its own).
std::vector<candidate> simulation_candidates(const job_spec& job, const simulate_request& request);

/// Packs and shards the job's documents with every candidate and simulates them.
simulate_data_outcome simulate_data_job(const job_spec& job, const simulate_request& request);

struct simulate_batch_outcome {
    simulation_setup setup;
    simulate_job_result result;
    std::vector<wlb::input_identity> inputs;
};

/// Simulates the steps of a sharded batch file (wlbtune.sharded_batch/1) under the job's layout,
/// model, hardware, schedule and partition.
simulate_batch_outcome simulate_batch_job(const job_spec& job, const std::string& batch_path,
                                          const simulate_request& request);

} // namespace wlb::tuner
