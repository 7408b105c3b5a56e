// The CPU backend's trainer: one rank's part of the decoder (its TP shard of its pipeline
// stage's layers), its TP/CP/PP/DP communicators, and the training step: compute_step_gradients
// in the stage's order of the pipeline schedule, then SGD on the reduced gradients. The `cpu`
// training_backend (runtime/train/backend.hpp) wraps it; tests use it directly to compare gradients
// with a single-rank run.
#pragma once

#include "runtime/comm/communicator.hpp"
#include "runtime/parallel/layout.hpp"
#include "runtime/train/backend.hpp"
#include "runtime/train/decoder.hpp"
#include "runtime/train/decoder_step.hpp"

#include <vector>

namespace wlb::runtime {

template <typename T>
class cpu_trainer {
public:
    /// Collective over `world` (see make_backend). Every rank initializes the full model from
    /// options.seed and keeps its part: stage_decoder_params(shard_decoder_params(...)).
    cpu_trainer(communicator& world, const decoder_config& config, const layout& l,
                const trainer_options& options);

    /// Forward and backward of a global batch in this stage's schedule order; the gradients of
    /// this rank's parameters summed over the batch (reduced over CP and DP).
    [[nodiscard]] step_gradients<T> gradients(const global_batch& batch, const batch_shards& shards,
                                              step_observer* observer = nullptr);
    /// SGD with the reduced gradients, reported as "optimizer step".
    void apply(const step_gradients<T>& grads, step_observer* observer = nullptr);

    /// This stage's op order for a replica of `micro_batches` micro-batches.
    [[nodiscard]] std::vector<stage_op> order(int micro_batches) const;
    [[nodiscard]] const decoder_params<T>& local_params() const noexcept { return m_params; }
    [[nodiscard]] const group_communicators& groups() const noexcept { return m_groups; }
    [[nodiscard]] const layout& job_layout() const noexcept { return m_layout; }

private:
    decoder_config m_config;
    layout m_layout;
    trainer_options m_options;
    group_communicators m_groups;
    decoder_params<T> m_params;
};

extern template class cpu_trainer<float>;
extern template class cpu_trainer<double>;

} // namespace wlb::runtime
