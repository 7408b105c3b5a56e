#include "runtime/train/cpu_trainer.hpp"

#include "base/error.hpp"

#include <chrono>

namespace wlb::runtime {

template <typename T>
cpu_trainer<T>::cpu_trainer(communicator& world, const decoder_config& config, const layout& l,
                            const trainer_options& options)
    : m_config(config), m_layout(l), m_options(options) {
    // Refuses another world size before any communication.
    m_groups = make_group_communicators(world, l);
    config.validate(l.tp());
    if (config.kv_head_count() != config.heads)
        throw input_error(fmt::format("model {}: the CPU backend trains multi-head attention "
                                      "(kv_heads = heads), this model has {} KV heads for {} heads",
                                      config.name, config.kv_head_count(), config.heads));
    if (config.layers < static_cast<std::int64_t>(l.pp()) * l.vpp())
        throw input_error(fmt::format("model {}: {} layers cannot fill pp={} x vpp={} model chunks",
                                      config.name, config.layers, l.pp(), l.vpp()));
    const auto full = init_decoder_params<T>(config, options.seed);
    m_params = stage_decoder_params(shard_decoder_params(config, full, l.tp(), m_groups.tp->rank()),
                                    l.pp(), m_groups.pp->rank(), l.vpp());
}

template <typename T>
std::vector<stage_op> cpu_trainer<T>::order(int micro_batches) const {
    return schedule_stage_ops(m_layout.pp(), m_layout.vpp(), micro_batches, m_groups.pp->rank(),
                              m_options.schedule);
}

template <typename T>
step_gradients<T> cpu_trainer<T>::gradients(const global_batch& batch, const batch_shards& shards,
                                            step_observer* observer) {
    const auto d = static_cast<std::size_t>(m_groups.dp->rank());
    if (batch.replicas.size() != static_cast<std::size_t>(m_layout.dp()))
        throw input_error(fmt::format("step {}: {} DP replicas for dp={}", batch.step,
                                      batch.replicas.size(), m_layout.dp()));
    const int micro_batches = static_cast<int>(batch.replicas[d].micro_batches.size());
    parallel_groups groups{*m_groups.tp, *m_groups.cp, *m_groups.dp, m_groups.pp.get(),
                           m_layout.vpp()};
    groups.observer = observer;
    return compute_step_gradients<T>(m_config, m_params, batch, shards, groups,
                                     order(micro_batches));
}

template <typename T>
void cpu_trainer<T>::apply(const step_gradients<T>& grads, step_observer* observer) {
    const auto t0 = std::chrono::steady_clock::now();
    apply_sgd(m_params, grads.grads, m_options.learning_rate);
    if (observer == nullptr)
        return;
    const auto t1 = std::chrono::steady_clock::now();
    op_record r;
    r.name = "optimizer step";
    r.lane = op_lane::compute;
    r.type = op_type::compute;
    r.phase = op_phase::optimizer;
    r.start_ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(t0.time_since_epoch()).count();
    r.dur_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count();
    observer->record(r);
}

template class cpu_trainer<float>;
template class cpu_trainer<double>;

} // namespace wlb::runtime
