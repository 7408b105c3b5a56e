// `wlbtune tune` as a library call: read a sample of the job's documents, search packing and CP
// sharding for its layout, model and hardware under the constraints, and return the search with
// the tuned config (the job spec with the winner's packing and sharding) to write.
#pragma once

#include "tuner/search/evaluate.hpp"
#include "tuner/search/tune.hpp"
#include "tuner/spec/job_spec.hpp"
#include "tuner/spec/tuned_config.hpp"

#include <cstdint>
#include <nlohmann/json.hpp>

namespace wlb::tuner {

struct tune_request {
    /// The search's options; its plan's schedule and partition are set from the job.
    tune_options options;
    std::int64_t max_documents = 0; ///< read at most this many source documents (0: as needed)
};

struct tune_outcome {
    tune_result result;
    /// The job with the winner's packing and sharding, the documents the tuner read and the
    /// steps it simulated.
    tuned_config config;
    /// The whole wlbtune.config/1 document (tuned_config_json).
    nlohmann::json json;
    document_set documents;
};

/// Throws wlb::input_error on constraints out of range (naming the option: --max-mean-delay,
/// --min-step-tokens) before any document is read.
tune_outcome tune_job(const job_spec& job, tune_request request);

} // namespace wlb::tuner
