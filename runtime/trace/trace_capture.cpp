#include "runtime/trace/trace_capture.hpp"

#include "base/error.hpp"

namespace wlb::runtime {
namespace {

constexpr std::int64_t messages_per_sender = std::int64_t{1} << 24;

lane lane_of(op_lane l) noexcept {
    switch (l) {
    case op_lane::compute:
        return lane::compute;
    case op_lane::tp:
        return lane::tp;
    case op_lane::cp:
        return lane::cp;
    case op_lane::pp:
        return lane::pp;
    case op_lane::dp:
        return lane::dp;
    case op_lane::host:
        return lane::host;
    }
    return lane::compute;
}

phase phase_of(op_phase p) noexcept {
    switch (p) {
    case op_phase::forward:
        return phase::fwd;
    case op_phase::backward:
        return phase::bwd;
    case op_phase::optimizer:
        return phase::optimizer;
    }
    return phase::none;
}

event_kind kind_of(const op_record& op) noexcept {
    switch (op.type) {
    case op_type::compute:
        return op.lane == op_lane::host ? event_kind::other : event_kind::compute;
    case op_type::collective:
        return event_kind::collective;
    case op_type::send:
        return event_kind::send;
    case op_type::recv:
        return event_kind::recv;
    }
    return event_kind::other;
}

} // namespace

std::int64_t p2p_flow_id(std::int64_t step, int sender, int world_size, std::int64_t message) {
    WLB_EXPECTS(step >= 0 && sender >= 0 && sender < world_size && message >= 0 &&
                    message < messages_per_sender,
                "flow id of step {} sender {} of {} message {}", step, sender, world_size, message);
    WLB_EXPECTS(step < (std::int64_t{1} << 62) / messages_per_sender / world_size,
                "flow ids of step {} overflow", step);
    return 1 + (step * world_size + sender) * messages_per_sender + message;
}

trace_capture::trace_capture(const layout& l, int world_rank)
    : m_layout(l), m_rank(world_rank), m_stage(l.coords_of(world_rank).pp) {}

void trace_capture::record(const op_record& op) {
    trace_event e;
    e.rank = m_rank;
    e.where = lane_of(op.lane);
    e.kind = kind_of(op);
    e.ph = phase_of(op.phase);
    e.name = std::string(op.name);
    e.start_ns = op.start_ns;
    e.dur_ns = op.dur_ns;
    e.step = m_step;
    e.micro_batch = op.micro_batch;
    e.stage = m_stage;
    e.virtual_stage = op.micro_batch >= 0 ? op.virtual_stage : -1;
    if (op.type != op_type::compute)
        e.bytes = static_cast<double>(op.bytes);
    if (op.type == op_type::send)
        e.flow_id = p2p_flow_id(m_step, m_rank, m_layout.world_size(), op.message);
    else if (op.type == op_type::recv)
        e.flow_id = p2p_flow_id(m_step, op.peer_world_rank, m_layout.world_size(), op.message);
    m_events.push_back(std::move(e));
}

std::optional<std::int64_t> trace_capture::first_start_ns() const noexcept {
    if (m_events.empty())
        return std::nullopt;
    std::int64_t first = m_events.front().start_ns;
    for (const auto& e : m_events)
        first = std::min(first, e.start_ns);
    return first;
}

void trace_capture::rebase(std::int64_t origin_ns) noexcept {
    for (auto& e : m_events)
        e.start_ns -= origin_ns;
}

} // namespace wlb::runtime
