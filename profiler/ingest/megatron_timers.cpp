#include "profiler/ingest/megatron_timers.hpp"

namespace wlb::profiler {

std::optional<timer_meaning> megatron_timer(std::string_view n) {
    using runtime::event_kind;
    using runtime::lane;
    using runtime::phase;
    timer_meaning m;
    if (n == "forward-compute" || n == "backward-compute") {
        m.ph = n[0] == 'f' ? phase::fwd : phase::bwd;
        m.work = work_class::mixed;
        m.per_micro_batch = true;
        return m;
    }
    if (n == "forward-recv" || n == "backward-recv" || n == "forward-send" ||
        n == "backward-send" || n == "forward-send-forward-recv" ||
        n == "forward-send-backward-recv" || n == "backward-send-forward-recv" ||
        n == "backward-send-backward-recv" || n == "forward-backward-send-forward-backward-recv") {
        m.where = lane::pp;
        const bool only_send = n == "forward-send" || n == "backward-send";
        m.kind = only_send ? event_kind::send : event_kind::recv;
        m.ph = n[0] == 'f' ? phase::fwd : phase::bwd;
        // The combined exchanges carry the micro-batch of their receive side; the phase is the
        // one of the pass that follows (a forward receive feeds a forward).
        if (n == "forward-send-backward-recv")
            m.ph = phase::bwd;
        if (n == "backward-send-forward-recv")
            m.ph = phase::fwd;
        m.per_micro_batch = true;
        return m;
    }
    if (n == "grads-reduce-scatter" || n == "all-grads-sync" || n == "grads-all-reduce" ||
        n == "layernorm-grads-all-reduce" || n == "embedding-grads-all-reduce" ||
        n == "params-all-gather") {
        m.where = lane::dp;
        m.kind = event_kind::collective;
        m.ph = n == "params-all-gather" ? phase::optimizer : phase::bwd;
        return m;
    }
    if (n == "optimizer") {
        m.ph = phase::optimizer;
        m.work = work_class::other;
        return m;
    }
    if (n.substr(0, 10) == "optimizer-") {
        m.ph = phase::optimizer;
        m.work = work_class::other;
        m.sub_timer = true;
        return m;
    }
    if (n == "batch-generator") {
        m.where = lane::host;
        m.kind = event_kind::other;
        m.per_micro_batch = true;
        return m;
    }
    if (n == "forward-backward" || n == "interval-time" || n == "train-step" || n == "iteration") {
        m.where = lane::host;
        m.kind = event_kind::other;
        m.envelope = true;
        return m;
    }
    return std::nullopt;
}

} // namespace wlb::profiler
