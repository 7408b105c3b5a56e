// The run loop of `wlbtune run` (design.md section 1, "run"), the same for every backend: step
// the backend through a list of packed and sharded global batches, time every step, capture every
// operation with host timers (runtime/trace/trace_capture.hpp) and write the job's trace as a
// wlbtune.trace/1 directory, each rank its own file and world rank 0 the manifest.
#pragma once

#include "runtime/comm/communicator.hpp"
#include "runtime/parallel/batch.hpp"
#include "runtime/parallel/layout.hpp"
#include "runtime/trace/trace.hpp"
#include "runtime/train/backend.hpp"
#include "runtime/train/decoder_step.hpp"

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace wlb::runtime {

/// One training step's input: the global batch and its CP sharding (shards[d][m]).
struct training_step {
    global_batch batch;
    batch_shards shards;
};

struct run_options {
    std::string trace_dir; ///< empty: no trace is captured
    trace_meta trace_info; ///< source, note (layout and steps are filled in)
    nlohmann::json trace_manifest_extra = nlohmann::json::object(); ///< e.g. the report header
};

struct step_record {
    std::int64_t step = 0;
    /// Wall clock of the slowest rank from a barrier before the step to the end of its update.
    double seconds = 0.0;
    double loss = 0.0; ///< before the step's update
    std::int64_t labelled_tokens = 0;
};

struct run_result {
    std::vector<step_record> steps;
    std::int64_t trace_events = 0; ///< over every rank; 0 without a trace
};

/// Runs every step on `backend` (collective over `world`, whose ranks are the layout's). Calls
/// `on_step` on every rank after each step with its record. With options.trace_dir, every rank
/// writes its events there, time 0 being the earliest operation of the job; a rank that cannot
/// write makes every rank throw wlb::runtime_failure naming it.
run_result run_training(training_backend& backend, communicator& world, const layout& l,
                        const std::vector<training_step>& steps, const run_options& options,
                        const std::function<void(const step_record&)>& on_step = {});

class emulated_job;

/// The run loop of an emulated job (runtime/train/device_backend.hpp: every rank of the layout in
/// this process): each step on every rank; a step's seconds are the virtual clocks' (from the
/// barrier that starts it to the last rank's end of the update). With options.trace_dir, this
/// process writes every rank's events (on the virtual clocks), the batches and the manifest.
run_result run_emulated_training(emulated_job& job, const std::vector<training_step>& steps,
                                 const run_options& options,
                                 const std::function<void(const step_record&)>& on_step = {});

} // namespace wlb::runtime
