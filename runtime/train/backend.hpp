// The execution backend seam of `wlbtune run` (design.md section 1, "run"): what runs one
// training step of a 4D-parallel layout on real hardware. The run loop
// (runtime/train/train_run.hpp), the capture and the trace output are the same for every backend; a
// backend brings the kernels, the parameters' memory and the step's collectives.
//
//   cpu   kernels/ops.hpp on the host (OpenBLAS GEMMs), the decoder step of
//         runtime/train/decoder_step.hpp, collectives through the world communicator's groups (MPI
//         under mpirun, one rank without it): runtime/train/cpu_trainer.hpp
//   cuda  the device decoder step (runtime/train/device_decoder.hpp) on CUDA kernels and NCCL,
//         bootstrapped from the same host world communicator, one GPU per rank
//         (runtime/train/cuda_backend.hpp; its --emulate form runs every rank of a layout on one
//         GPU in one process: runtime/train/device_backend.hpp's emulated_job).
#pragma once

#include "runtime/comm/communicator.hpp"
#include "runtime/device/attention_choice.hpp"
#include "runtime/parallel/batch.hpp"
#include "runtime/parallel/layout.hpp"
#include "runtime/parallel/pipeline_schedule.hpp"
#include "runtime/trace/step_observer.hpp"
#include "runtime/train/decoder.hpp"
#include "runtime/train/decoder_step.hpp"

#include <cstdint>
#include <memory>
#include <string_view>

namespace wlb::runtime {

enum class backend_kind : std::uint8_t { cpu, cuda };
/// "cpu" or "cuda"; anything else is wlb::input_error listing them.
[[nodiscard]] backend_kind parse_backend(std::string_view text);
[[nodiscard]] std::string_view to_string(backend_kind k) noexcept;

/// Number format of parameters, activations and gradients.
enum class precision : std::uint8_t { f32, f64 };
/// "float" (or "fp32") and "double" (or "fp64"); anything else is wlb::input_error.
[[nodiscard]] precision parse_precision(std::string_view text);
/// "float", "double".
[[nodiscard]] std::string_view to_string(precision p) noexcept;

/// How a trainer steps: parameters from `seed` (init_decoder_params), plain SGD after the
/// gradient reduction, the pipeline schedule of every stage.
struct trainer_options {
    std::uint64_t seed = 1;
    double learning_rate = 1e-2;
    schedule_options schedule; ///< pipeline_order's options (1F1B when vpp = 1)
};

/// What the cuda backend runs on.
struct device_options {
    /// Every rank of the layout in this process on one device (runtime/comm/emulated_world.hpp).
    bool emulate = false;
    attention_choice attention = attention_choice::automatic;
    /// CUDA ordinal; -1: the launcher's node-local rank modulo the visible devices (emulated: 0).
    int device = -1;
    double watchdog_seconds = default_watchdog_seconds; ///< every NCCL wait
};

struct backend_options {
    decoder_config model;
    layout job_layout{1, 1, 1, 1};
    precision numbers = precision::f32; ///< cpu; the cuda backend computes in bf16 and fp32
    trainer_options trainer;
    device_options device; ///< cuda
};

/// What one step reports to the run loop (the same number on every rank).
struct step_result {
    double loss = 0.0; ///< mean next-token cross-entropy over the global batch, before the update
    std::int64_t labelled_tokens = 0;
};

class training_backend {
public:
    training_backend() = default;
    virtual ~training_backend() = default;
    training_backend(const training_backend&) = delete;
    training_backend& operator=(const training_backend&) = delete;

    [[nodiscard]] virtual std::string_view name() const noexcept = 0;
    /// One training step on the global batch: forward, loss, backward, gradient reduction over
    /// CP and DP, optimizer update. Collective over the world: every rank passes the same batch
    /// and shards (shards[d][m]: CP sharding of micro-batch m of replica d). Every operation is
    /// reported to `observer` when it is not null.
    virtual step_result step(const global_batch& batch, const batch_shards& shards,
                             step_observer* observer) = 0;
};

} // namespace wlb::runtime
