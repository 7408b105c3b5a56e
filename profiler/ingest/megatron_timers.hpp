// The vocabulary of Megatron-LM's timers (megatron/core/pipeline_parallel/schedules.py,
// megatron/training/training.py) and what each one measures in the trace model.
#pragma once

#include "profiler/ingest/job_trace.hpp"

#include <optional>
#include <string_view>

namespace wlb::profiler {

struct timer_meaning {
    runtime::lane where = runtime::lane::compute;
    runtime::event_kind kind = runtime::event_kind::compute;
    runtime::phase ph = runtime::phase::none;
    work_class work = work_class::none;
    bool per_micro_batch = false; ///< the timer runs once per micro-batch (and model chunk)
    bool envelope = false;        ///< spans other timers (forward-backward): not an operation
    bool sub_timer = false;       ///< runs inside another timer (optimizer-inner-step)
};

/// forward-compute, backward-compute (per micro-batch compute, attention and linear together);
/// forward-recv / backward-recv and the combined exchanges forward-send-backward-recv, ...
/// (blocking receives on the pp lane); forward-send / backward-send (sends); grads-reduce-scatter,
/// all-grads-sync, layernorm-grads-all-reduce, embedding-grads-all-reduce, params-all-gather
/// (dp lane collectives); optimizer (compute, optimizer phase) and its optimizer-* sub-timers;
/// batch-generator (host); forward-backward, interval-time, train-step, iteration (envelopes).
/// nullopt for a name outside the vocabulary.
std::optional<timer_meaning> megatron_timer(std::string_view name);

} // namespace wlb::profiler
