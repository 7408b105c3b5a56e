// Megatron-style timers of a simulated job, for tests of timer-timeline ingestion: every
// operation of the step plan, simulated with the faults given, becomes the timer Megatron-LM
// would record for it (forward-compute, backward-compute, forward-send, ..., optimizer) on every
// TP rank of its TP group (TP peers run in lock step). The faults are the truth the analysis
// must find.
#pragma once

#include "runtime/plan/step_plan.hpp"
#include "runtime/sim/fault.hpp"
#include "runtime/sim/simulator.hpp"
#include "support/fake_duration_model.hpp"

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace wlb::test {

struct timed_op {
    int rank = 0;
    std::string timer;
    std::int64_t start_ns = 0, end_ns = 0;
    int step = 0, micro_batch = -1;
    bool comm = false; ///< a transfer or collective (pp-comm / dp-comm threads)
};

/// `steps` steps of `layout` (micro-batches of `tokens` tokens each, one document), with
/// `faults`; durations from a fake model: linear 1 us per token, transfers 0.2 ms, collectives
/// 0.5 ms, optimizer 1 ms. Steps follow each other 1 ms apart.
inline std::vector<timed_op> simulated_timers(const runtime::layout& l, int steps,
                                              int micro_batches,
                                              const std::vector<runtime::fault>& faults,
                                              std::int64_t tokens = 4096) {
    fake_duration_model model;
    model.layers = 4 * l.pp();
    model.p2p_seconds_each = 2e-4;
    model.collective_seconds_each = 5e-4;
    model.optimizer_seconds_each = 1e-3;
    model.layer_params = 1e6;
    std::vector<timed_op> out;
    std::int64_t offset = 0;
    for (int s = 0; s < steps; ++s) {
        const auto batch =
            make_step(l.dp(), l.cp(), micro_batches, [&](int, int) { return tokens; });
        const auto plan = runtime::build_step_plan(l, batch, model, runtime::plan_options{});
        const auto res = runtime::simulate(plan, faults);
        for (std::size_t i = 0; i < plan.ops.size(); ++i) {
            const auto& op = plan.ops[i];
            const bool fwd = op.ph == runtime::phase::fwd;
            timed_op t;
            switch (op.kind) {
            case runtime::op_kind::layers:
                t.timer = fwd ? "forward-compute" : "backward-compute";
                break;
            case runtime::op_kind::send:
                t.timer = fwd ? "forward-send" : "backward-send";
                t.comm = true;
                break;
            case runtime::op_kind::recv:
                t.timer = fwd ? "forward-recv" : "backward-recv";
                t.comm = true;
                break;
            case runtime::op_kind::collective:
                t.timer = "grads-reduce-scatter";
                t.comm = true;
                break;
            case runtime::op_kind::compute:
                // The output layer (zero here) is inside forward-compute in Megatron.
                t.timer = op.ph == runtime::phase::optimizer ? "optimizer" : "";
                break;
            }
            if (t.timer.empty())
                continue;
            t.start_ns = offset + std::llround(res.start_seconds[i] * 1e9);
            t.end_ns = offset + std::llround(res.end_seconds[i] * 1e9);
            t.step = s;
            t.micro_batch = op.micro_batch;
            const int r0 = plan.units[static_cast<std::size_t>(op.unit)].rank;
            auto c = l.coords_of(r0);
            for (int tp = 0; tp < l.tp(); ++tp) {
                c.tp = tp;
                t.rank = l.rank_of(c);
                out.push_back(t);
            }
        }
        offset += std::llround(res.step_seconds * 1e9) + 1'000'000;
    }
    return out;
}

} // namespace wlb::test
