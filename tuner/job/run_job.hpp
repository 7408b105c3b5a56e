// The tuner's side of a real run (`wlbtune run`, runtime/train/train_run.hpp): the job's model as
// the executor's decoder and as the cost model sees it, the packed and CP-sharded steps the
// executor runs (the packers and sharders of `wlbtune pack` and `wlbtune shard`, unchanged), and
// the simulator's prediction of the same steps, so a run prints measured and predicted step
// times side by side. prepare_run does all of it for a job spec before any rank starts work.
#pragma once

#include "runtime/comm/communicator.hpp"
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
#include "tuner/spec/job_spec.hpp"

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace wlb::tuner {

/// The cost model of a run: the model on `hardware` over `layout`, activations and collectives
/// in the run's number format (4 or 8 bytes per element instead of bf16's 2), and the output
/// layer whole on every TP rank, as the CPU decoder runs it.
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

/// Throws wlb::input_error unless the launcher started exactly the layout's ranks (naming the
/// mpirun command that would); returns what the launcher said.
runtime::launch_info check_launch(const runtime::layout& l);

/// How an emulated run (`--backend cuda --emulate`) times its transfers.
enum class emulated_comm : std::uint8_t {
    measured, ///< the device copies that carry them, measured
    modelled  ///< the cost model's collective and point-to-point times
};

struct run_request {
    std::int64_t steps = 3;
    runtime::backend_kind backend = runtime::backend_kind::cpu;
    runtime::device_options device; ///< cuda: emulate, attention, device, watchdog
    emulated_comm comm = emulated_comm::measured;
    runtime::precision numbers = runtime::precision::f32; ///< cpu (cuda: bf16 and fp32)
    std::uint64_t seed = 1;                               ///< of the initial parameters
    double learning_rate = 1e-2;                          ///< SGD
    std::string trace_dir; ///< capture the job's trace here; empty: none
};

/// Everything a run needs before its ranks start: every rank prepares the same steps (the
/// packers and sharders are deterministic), so no batch travels between ranks.
struct prepared_run {
    runtime::decoder_config decoder;
    cost_model costs; ///< of the job's model and hardware in the run's number format
    runtime::schedule_options schedule;
    run_batches batches;
    std::vector<double> predicted_seconds; ///< per step, simulated
    std::string data;                      ///< the document stream's description
    std::vector<wlb::input_identity> inputs;
};

/// Checks the model against the executor (runtime::decoder_config_of for the CPU backend,
/// device_decoder_config_of, which also takes grouped-query attention, for cuda; the layout's
/// tp, pp x vpp model chunks), then packs and shards request.steps steps of the job's documents
/// and predicts them (the cuda backend's activations and collectives in bf16). Throws
/// wlb::input_error naming what does not fit. Running it: tuner/job/run_execute.hpp.
prepared_run prepare_run(const job_spec& job, const run_request& request);

} // namespace wlb::tuner
