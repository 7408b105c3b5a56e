// The tuner's side of a real run (`wlbtune run`, runtime/train/train_run.hpp): the decoder's shape
// for the cost model, the packed and CP-sharded steps the executor runs (the packers and sharders
// of `wlbtune pack` and `wlbtune shard`, unchanged), and the simulator's prediction of the same
// steps, so a run prints measured and predicted step times side by side.
#pragma once

#include "runtime/model/model_spec.hpp"
#include "runtime/parallel/layout.hpp"
#include "runtime/parallel/pipeline_schedule.hpp"
#include "runtime/train/backend.hpp"
#include "runtime/train/decoder.hpp"
#include "runtime/train/train_run.hpp"
#include "tuner/cost/cost_model.hpp"
#include "tuner/cost/hardware.hpp"
#include "tuner/data/document_stream.hpp"
#include "tuner/packing/packer.hpp"
#include "tuner/sharding/sharding.hpp"

#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

namespace wlb::tuner {

/// The cost model of a run: the model on `hardware` over `layout`, activations and collectives
/// in the run's number format (4 or 8 bytes per element instead of bf16's 2).
[[nodiscard]] cost_model run_cost_model(const runtime::model_spec& model,
                                        const hardware_config& hardware,
                                        const runtime::layout& layout, runtime::precision numbers);

/// The steps of a run and what the sharder did with them.
struct run_batches {
    std::vector<runtime::training_step> steps;
    /// Per step: micro-batches the sharder laid out per-seq, per-doc and hybrid (adaptive picks
    /// per-seq or per-doc per micro-batch), indexed by sharding_policy.
    std::vector<std::array<int, 4>> applied;
};

/// Packs steps 0 .. steps-1 from `stream` with `p` and shards every micro-batch with `s`. Throws
/// wlb::input_error naming `source` when the data ends before `steps` full steps (a step with an
/// empty micro-batch, or none at all).
[[nodiscard]] run_batches pack_and_shard(document_stream& stream, packer& p, const sharder& s,
                                         std::int64_t steps, std::string_view source);

/// The simulator's step time (seconds, simulated) for each step when it executes what the CPU
/// executor executes: the same pipeline schedule, the decoder's layer cut
/// (runtime::decoder_chunk_layers), gradients reduced after the backward, the cost model's
/// durations.
[[nodiscard]] std::vector<double>
predict_run_seconds(const cost_model& costs, const runtime::decoder_config& d,
                    const std::vector<runtime::training_step>& steps,
                    const runtime::schedule_options& schedule);

} // namespace wlb::tuner
