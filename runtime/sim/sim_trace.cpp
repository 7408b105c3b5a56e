#include "runtime/sim/sim_trace.hpp"

#include <algorithm>
#include <cmath>

namespace wlb::runtime {
namespace {

class unit_events {
public:
    unit_events(const step_plan& plan, std::int64_t offset_ns, std::vector<trace_event>& out)
        : m_plan(plan), m_offset(offset_ns), m_out(out) {}

    trace_event& add(const plan_op& op, lane where, event_kind kind, std::string_view name,
                     double from_s, double to_s) {
        trace_event e;
        e.where = where;
        e.kind = kind;
        e.ph = op.ph;
        e.name = std::string(name);
        e.start_ns = m_offset + std::llround(from_s * 1e9);
        e.dur_ns = std::max<std::int64_t>(0, m_offset + std::llround(to_s * 1e9) - e.start_ns);
        e.step = m_plan.step;
        e.micro_batch = op.micro_batch;
        e.stage = op.stage;
        e.virtual_stage = op.virtual_stage;
        m_out.push_back(std::move(e));
        return m_out.back();
    }

private:
    const step_plan& m_plan;
    std::int64_t m_offset;
    std::vector<trace_event>& m_out;
};

} // namespace

std::int64_t append_step_trace(trace& t, const step_plan& plan, const sim_result& r,
                               std::int64_t offset_ns, std::int64_t flow_base) {
    const layout& l = plan.job_layout;
    t.ranks.resize(static_cast<std::size_t>(l.world_size()));
    const int tp = l.tp();
    std::vector<trace_event> events;
    for (std::size_t u = 0; u < plan.units.size(); ++u) {
        const auto& unit = plan.units[u];
        events.clear();
        unit_events out(plan, offset_ns, events);
        for (const auto* stream : {&unit.main, &unit.dp})
            for (int id : *stream) {
                const auto i = static_cast<std::size_t>(id);
                const auto& op = plan.ops[i];
                const double start = r.start_seconds[i], end = r.end_seconds[i];
                switch (op.kind) {
                case op_kind::compute:
                    out.add(op, lane::compute, event_kind::compute, op.name, start, end);
                    break;
                case op_kind::send:
                case op_kind::recv: {
                    auto& e =
                        out.add(op, lane::pp,
                                op.kind == op_kind::send ? event_kind::send : event_kind::recv,
                                op.name, start, end);
                    e.bytes = op.bytes;
                    // Flow id of the send; unique per TP rank below (patched at replication).
                    e.flow_id = op.kind == op_kind::send ? id : op.peer;
                    break;
                }
                case op_kind::collective: {
                    auto& e = out.add(op, op.where, event_kind::collective, op.name, start, end);
                    e.bytes = op.bytes;
                    break;
                }
                case op_kind::layers: {
                    const auto& c = plan.costs[static_cast<std::size_t>(op.cost)];
                    const double f = r.compute_factor[i];
                    const double comm = op.seconds * r.comm_factor[i];
                    const double period = r.layer_period_seconds[i];
                    const double t0 = r.sync_seconds[i];
                    const double attn = c.attention_seconds * f, lin = c.linear_seconds * f;
                    const double tps = c.tp_seconds * r.tp_factor[u];
                    const bool fwd = op.ph == phase::fwd;
                    const std::string_view cp_name =
                        fwd ? "cp all-gather kv" : "cp reduce-scatter dkv";
                    double prev_end = start;
                    for (int k = 0; k < op.layers; ++k) {
                        const double layer_start = t0 + k * period;
                        const double work_start = layer_start + comm;
                        if (l.cp() > 1 && work_start > prev_end) {
                            auto& e = out.add(op, lane::cp, event_kind::collective, cp_name,
                                              prev_end, work_start);
                            e.bytes = op.bytes;
                        }
                        double at = work_start;
                        if (attn > 0.0)
                            out.add(op, lane::compute, event_kind::compute,
                                    fwd ? "attention fwd" : "attention bwd", at, at + attn);
                        at += attn;
                        if (lin > 0.0)
                            out.add(op, lane::compute, event_kind::compute,
                                    fwd ? "linear fwd" : "linear bwd", at, at + lin);
                        at += lin;
                        if (tps > 0.0)
                            out.add(op, lane::tp, event_kind::collective,
                                    fwd ? "tp collectives fwd" : "tp collectives bwd", at,
                                    at + tps);
                        prev_end = at + tps;
                    }
                    break;
                }
                }
            }
        std::stable_sort(events.begin(), events.end(), [](const auto& a, const auto& b) {
            return a.start_ns != b.start_ns ? a.start_ns < b.start_ns : a.where < b.where;
        });
        for (int k = 0; k < tp; ++k) {
            coords c = unit.where;
            c.tp = k;
            const int rank = l.rank_of(c);
            auto& dst = t.ranks[static_cast<std::size_t>(rank)];
            const std::size_t first = dst.size();
            dst.insert(dst.end(), events.begin(), events.end());
            for (std::size_t e = first; e < dst.size(); ++e) {
                dst[e].rank = rank;
                if (dst[e].kind == event_kind::send || dst[e].kind == event_kind::recv)
                    dst[e].flow_id = flow_base + dst[e].flow_id * tp + k + 1;
            }
        }
    }
    return flow_base + static_cast<std::int64_t>(plan.ops.size()) * tp + 1;
}

} // namespace wlb::runtime
