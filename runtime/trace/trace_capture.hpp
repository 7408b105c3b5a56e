// Host-timer capture of the CPU executor (design.md section 1, "run"): a step_observer that turns
// one rank's operations into events of the trace contract (runtime/trace/trace.hpp), so a real
// run's traces are written in the same wlbtune.trace/1 format as the simulator's and every consumer
// (the Perfetto export, the analysis) reads them unchanged:
//   rank      the world rank that ran the operation
//   lane      compute, tp, cp, pp, dp (the group a collective or transfer runs in), host
//   kind      compute (host-lane work: other), collective, send, recv
//   phase     fwd, bwd, optimizer
//   step, micro_batch (-1: step-level), stage (the rank's pp coordinate), virtual_stage (-1:
//   step-level), bytes (communication: what this rank sends, receives or contributes)
//   flow_id   a send and its receive carry the same id (p2p_flow_id), so Perfetto draws arrows
// Times are the steady clock's, which every process of one host shares; rebase() moves them to
// the job's origin once the ranks agree on it (runtime/train/train_run.hpp). Ranks on different
// hosts keep their hosts' clock offsets (not corrected).
#pragma once

#include "runtime/parallel/layout.hpp"
#include "runtime/trace/step_observer.hpp"
#include "runtime/trace/trace.hpp"

#include <cstdint>
#include <optional>
#include <vector>

namespace wlb::runtime {

class trace_capture final : public step_observer {
public:
    trace_capture(const layout& l, int world_rank);

    /// Operations recorded from now on belong to `step`.
    void begin_step(std::int64_t step) noexcept { m_step = step; }
    void record(const op_record& op) override;

    /// This rank's events in program (= start) order.
    [[nodiscard]] const std::vector<trace_event>& events() const noexcept { return m_events; }
    /// The earliest start, or nullopt before any event.
    [[nodiscard]] std::optional<std::int64_t> first_start_ns() const noexcept;
    /// Subtracts `origin_ns` from every start.
    void rebase(std::int64_t origin_ns) noexcept;

private:
    layout m_layout;
    int m_rank;
    int m_stage;
    std::int64_t m_step = 0;
    std::vector<trace_event> m_events;
};

/// The flow id of point-to-point message `message` (op_record::message) that world rank
/// `sender` sent in `step`: positive and unique within a job of `world_size` ranks.
[[nodiscard]] std::int64_t p2p_flow_id(std::int64_t step, int sender, int world_size,
                                       std::int64_t message);

} // namespace wlb::runtime
