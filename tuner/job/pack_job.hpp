// `wlbtune pack` as a library call: pack the job's documents with its packing for a number of
// steps, shard every micro-batch when the job has a CP sharding, write the plan, and run other
// packing policies on the same documents beside it.
#pragma once

#include "base/provenance.hpp"
#include "tuner/packing/pack_run.hpp"
#include "tuner/sharding/shard_run.hpp"
#include "tuner/spec/job_spec.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace wlb::tuner {

struct pack_request {
    std::int64_t steps = 0; ///< 0: until the data ends
    std::string plan_path;  ///< write the plan (wlbtune.plan/1) here; "-": stdout; empty: none
    /// Other policies to run on the same documents with the job's knobs (the job's own policy
    /// is not run twice).
    std::vector<packing_policy> compare;
};

struct pack_outcome {
    std::vector<pack_result> results; ///< the job's packing first, then `compare`'s
    /// The predicted CP sharding of the job's packing, when the job shards.
    std::optional<shard_run_summary> sharding;
    std::int64_t documents_read = 0; ///< by the stream, over the longest run
    std::string data;                ///< the stream's description
    std::vector<wlb::input_identity> inputs;
};

/// Throws wlb::input_error on bad data (naming the file and place) and what the plan writer
/// refuses; nothing is written at plan_path unless the run completes.
pack_outcome pack_job(const job_spec& job, const pack_request& request);

} // namespace wlb::tuner
