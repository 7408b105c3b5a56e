// The decoder's training step on a compute device (issue [cuda-run]): the step of the CPU backend
// (runtime/train/decoder_step.hpp: the same schedule walk, the same operations and names, the
// same loss) written once over the compute device and communication seams
// (runtime/device/compute_device.hpp, runtime/comm/device_comm.hpp), so the host reference runs
// it in the unit tests against the CPU backend and a GPU runs it on its kernels and NCCL (or
// emulated on one GPU). Per rank:
//
// - parameters: this rank's part of the decoder (TP shard of its stage's layers) in flat
//   buffers: fp32 master weights, bf16 working weights, fp32 gradients accumulated over the
//   micro-batches (runtime/train/device_params.hpp); initialized as the CPU backend does
//   (init_decoder_params, from the seed) up to host_init_parameters, else on the device with the
//   same scales (norms 1).
// - layers: RMSNorm, fused QKV projection (grouped-query attention: kv_heads < heads, K/V
//   expanded per query head for the attention kernels and their gradients summed back), rotary,
//   causal document-masked attention over the CP rank's chunks, output projection, residual,
//   RMSNorm, SwiGLU MLP, residual; embedding first, final RMSNorm, LM head and fused
//   cross-entropy last (the head's backward runs in its forward slot, as on the CPU).
// - TP: Megatron sequence parallelism (runtime/train/token_plan.hpp): between the layers a TP
//   rank holds its slice of the tokens; all-gather before the column-parallel GEMMs,
//   reduce-scatter after the row-parallel ones; the gradients of the tensors every TP rank holds
//   whole are all-reduced over TP.
// - CP: Llama 3: K/V all-gathered, local queries attend their documents' key segments, dK/dV
//   reduce-scattered home.
// - PP: each stage's op order from the simulator's schedules (schedule_stage_ops), activations
//   and gradients sent between the stages of consecutive model chunks, with each micro-batch's
//   own length.
// - DP (and CP, whose ranks hold the same weights): gradients all-reduced after the backward;
//   plain SGD on the master weights, the working weights refreshed from them.
//
// Every operation is reported to an op_recorder (runtime/train/op_recorder.hpp) under the CPU
// step's names ("attention fwd", "qkv proj bwd", "cp all-gather kv", "send activation", ...),
// with the sequence-parallel collectives as "tp all-gather fwd/bwd" and "tp reduce-scatter
// fwd/bwd"; ranges go to a capture (runtime/trace/capture_ranges.hpp) when one is attached.
#pragma once

#include "runtime/comm/device_comm.hpp"
#include "runtime/device/compute_device.hpp"
#include "runtime/parallel/batch.hpp"
#include "runtime/parallel/layout.hpp"
#include "runtime/trace/capture_ranges.hpp"
#include "runtime/train/backend.hpp"
#include "runtime/train/decoder.hpp"
#include "runtime/train/decoder_step.hpp"
#include "runtime/train/device_params.hpp"
#include "runtime/train/op_recorder.hpp"

#include <functional>
#include <memory>
#include <vector>

namespace wlb::runtime {

/// One rank's groups for the device step (each may have one member).
struct device_groups {
    device_comm& tp;
    device_comm& cp;
    device_comm& pp;
    device_comm& dp;
    /// The sum of a host number over every rank of the job (the loss); collective.
    std::function<double(double)> world_sum;
};

/// Full models up to this many parameters are initialized on the host exactly as the CPU
/// backend does; larger ones on the device (uniform values of the CPU init's scales).
inline constexpr double host_init_parameters = 64e6;

class device_decoder {
public:
    /// Rank `world_rank` of layout `l`; initializes its parameters on `device` (see above).
    device_decoder(compute_device& device, const decoder_config& config, const layout& l,
                   int world_rank, const trainer_options& options);
    ~device_decoder();
    device_decoder(const device_decoder&) = delete;
    device_decoder& operator=(const device_decoder&) = delete;

    /// Forward and backward of the global batch in this stage's schedule order, then the
    /// gradient reductions; the gradients stay on the device. Collective over `groups`: every
    /// rank passes the same batch and shards. Throws wlb::input_error as compute_step_gradients
    /// does for a batch that does not fit the layout.
    step_result gradients(const global_batch& batch, const batch_shards& shards,
                          const device_groups& groups, op_recorder* recorder = nullptr,
                          capture_ranges* capture = nullptr);
    /// SGD with the reduced gradients, working weights refreshed, gradients zeroed; reported as
    /// "optimizer step".
    void apply(op_recorder* recorder = nullptr, capture_ranges* capture = nullptr);

    /// This stage's op order for a replica of `micro_batches` micro-batches.
    [[nodiscard]] std::vector<stage_op> order(int micro_batches) const;
    /// The gradients of this rank's parameters (after gradients(), before apply()).
    [[nodiscard]] decoder_params<float> download_gradients();
    [[nodiscard]] decoder_params<float> download_params();
    /// Replaces this rank's parameters (its part, stage_decoder_params(shard_decoder_params(...))
    /// of the full model) and zeroes the gradients.
    void load_params(const decoder_params<float>& local);
    [[nodiscard]] const device_param_layout& param_layout() const noexcept { return m_layout; }
    [[nodiscard]] compute_device& device() noexcept { return m_device; }

    struct impl;

private:
    compute_device& m_device;
    decoder_config m_config;
    layout m_job_layout;
    coords m_coords;
    trainer_options m_options;
    device_param_layout m_layout;
    std::vector<std::pair<std::string, std::size_t>> m_sizes;
    dbuffer m_master, m_work, m_grads, m_loss;
};

} // namespace wlb::runtime
