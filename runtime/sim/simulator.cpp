#include "runtime/sim/simulator.hpp"

#include "base/error.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <limits>

namespace wlb::runtime {
namespace {

struct link_fault {
    int unit_a = 0;
    int unit_b = 0;
    double factor = 1.0;
};

bool is_link(const link_fault& f, int a, int b) {
    return (f.unit_a == a && f.unit_b == b) || (f.unit_a == b && f.unit_b == a);
}

class engine {
public:
    engine(const step_plan& plan, const std::vector<fault>& faults) : m_plan(plan) {
        const std::size_t n = plan.ops.size();
        m_r.start_seconds.assign(n, 0.0);
        m_r.end_seconds.assign(n, 0.0);
        m_r.sync_seconds.assign(n, 0.0);
        m_r.own_layer_seconds.assign(n, 0.0);
        m_r.layer_period_seconds.assign(n, 0.0);
        m_r.compute_factor.assign(n, 1.0);
        m_r.comm_factor.assign(n, 1.0);
        m_r.tp_factor.assign(plan.units.size(), 1.0);
        m_r.units.assign(plan.units.size(), unit_time{});
        m_done.assign(n, 0);
        m_arrived.assign(n, 0);
        m_waiting.assign(n, -1);
        m_gate.assign(n, -1);
        m_gate_time.assign(n, 0.0);
        m_group_count.assign(plan.groups.size(), 0);
        m_group_t0.assign(plan.groups.size(), -1.0);
        m_group_gate.assign(plan.groups.size(), -1);
        apply_faults(faults);
    }

    sim_result run() {
        const int streams = static_cast<int>(m_plan.units.size()) * 2;
        m_pos.assign(static_cast<std::size_t>(streams), 0);
        m_clock.assign(static_cast<std::size_t>(streams), 0.0);
        m_last.assign(static_cast<std::size_t>(streams), -1);
        m_in_list.assign(static_cast<std::size_t>(streams), 1);
        m_list.reserve(static_cast<std::size_t>(streams));
        for (int s = streams - 1; s >= 0; --s)
            m_list.push_back(s);
        while (!m_list.empty()) {
            const int s = m_list.back();
            m_list.pop_back();
            m_in_list[static_cast<std::size_t>(s)] = 0;
            advance(s);
        }
        for (int s = 0; s < streams; ++s) {
            const auto& ops = stream_ops(s);
            if (m_pos[static_cast<std::size_t>(s)] < ops.size()) {
                const auto& op =
                    m_plan.ops[static_cast<std::size_t>(ops[m_pos[static_cast<std::size_t>(s)]])];
                throw internal_error(fmt::format(
                    "step plan deadlocks: unit {} (rank {}) waits forever at \"{}\" (micro-batch "
                    "{}, stage {}, virtual stage {})",
                    s / 2, m_plan.units[static_cast<std::size_t>(s / 2)].rank, op.name,
                    op.micro_batch, op.stage, op.virtual_stage));
            }
        }
        account();
        trace_critical_path();
        return std::move(m_r);
    }

private:
    const std::vector<int>& stream_ops(int s) const {
        const auto& u = m_plan.units[static_cast<std::size_t>(s / 2)];
        return (s % 2) == 0 ? u.main : u.dp;
    }
    int stream_of(const plan_op& op) const { return op.unit * 2 + (op.where == lane::dp ? 1 : 0); }
    void push(int s) {
        if (s >= 0 && !m_in_list[static_cast<std::size_t>(s)]) {
            m_in_list[static_cast<std::size_t>(s)] = 1;
            m_list.push_back(s);
        }
    }
    void notify(int id) {
        const int w = m_waiting[static_cast<std::size_t>(id)];
        if (w >= 0) {
            m_waiting[static_cast<std::size_t>(id)] = -1;
            push(w);
        }
    }

    void apply_faults(const std::vector<fault>& faults) {
        const auto& l = m_plan.job_layout;
        std::vector<double> unit_factor(m_plan.units.size(), 1.0);
        std::vector<std::vector<double>> mb_factor;
        for (int m : m_plan.micro_batches)
            mb_factor.emplace_back(static_cast<std::size_t>(m), 1.0);
        std::vector<link_fault> links;
        for (const auto& f : faults) {
            switch (f.what) {
            case fault::kind::slow_rank:
                unit_factor[static_cast<std::size_t>(m_plan.unit_of_rank(f.rank))] *= f.factor;
                break;
            case fault::kind::slow_stage:
                for (std::size_t u = 0; u < m_plan.units.size(); ++u)
                    if (m_plan.units[u].where.pp == f.stage)
                        unit_factor[u] *= f.factor;
                break;
            case fault::kind::heavy_micro_batch:
                for (int d = 0; d < l.dp(); ++d) {
                    if (f.replica >= 0 && f.replica != d)
                        continue;
                    auto& per_mb = mb_factor[static_cast<std::size_t>(d)];
                    if (f.micro_batch >= static_cast<int>(per_mb.size()))
                        throw input_error(fmt::format(
                            "--inject {}: DP replica {} has {} micro-batches (0-{}) in step {}",
                            f.describe(), d, per_mb.size(), per_mb.size() - 1, m_plan.step));
                    per_mb[static_cast<std::size_t>(f.micro_batch)] *= f.factor;
                }
                break;
            case fault::kind::slow_link: {
                const int ua = m_plan.unit_of_rank(f.rank), ub = m_plan.unit_of_rank(f.other_rank);
                if (ua == ub)
                    m_r.tp_factor[static_cast<std::size_t>(ua)] *= f.factor;
                else if (l.coords_of(f.rank).tp == l.coords_of(f.other_rank).tp)
                    links.push_back({ua, ub, f.factor});
                break;
            }
            }
        }
        for (std::size_t id = 0; id < m_plan.ops.size(); ++id) {
            const auto& op = m_plan.ops[id];
            if (op.kind == op_kind::compute || op.kind == op_kind::layers) {
                double f = unit_factor[static_cast<std::size_t>(op.unit)];
                if (op.micro_batch >= 0)
                    f *= mb_factor[static_cast<std::size_t>(
                        m_plan.units[static_cast<std::size_t>(op.unit)].where.dp)]
                                  [static_cast<std::size_t>(op.micro_batch)];
                m_r.compute_factor[id] = f;
            }
            if ((op.kind == op_kind::send || op.kind == op_kind::recv) && op.peer >= 0) {
                const int other = m_plan.ops[static_cast<std::size_t>(op.peer)].unit;
                for (const auto& lf : links)
                    if (is_link(lf, op.unit, other))
                        m_r.comm_factor[id] *= lf.factor;
            }
        }
        if (links.empty())
            return;
        std::vector<char> in_group(m_plan.units.size(), 0);
        for (const auto& members : m_plan.groups) {
            for (int id : members)
                in_group[static_cast<std::size_t>(m_plan.ops[static_cast<std::size_t>(id)].unit)] =
                    1;
            double f = 1.0;
            for (const auto& lf : links)
                if (in_group[static_cast<std::size_t>(lf.unit_a)] &&
                    in_group[static_cast<std::size_t>(lf.unit_b)])
                    f *= lf.factor;
            for (int id : members) {
                in_group[static_cast<std::size_t>(m_plan.ops[static_cast<std::size_t>(id)].unit)] =
                    0;
                m_r.comm_factor[static_cast<std::size_t>(id)] = f;
            }
        }
    }

    double layer_work(int id) const {
        const auto& op = m_plan.ops[static_cast<std::size_t>(id)];
        const auto& c = m_plan.costs[static_cast<std::size_t>(op.cost)];
        return c.compute_seconds() * m_r.compute_factor[static_cast<std::size_t>(id)] +
               c.tp_seconds * m_r.tp_factor[static_cast<std::size_t>(op.unit)];
    }

    void finish(int id, double start, double end, int gate, double gate_time) {
        const auto i = static_cast<std::size_t>(id);
        m_done[i] = 1;
        m_r.start_seconds[i] = start;
        m_r.sync_seconds[i] = start;
        m_r.end_seconds[i] = end;
        m_gate[i] = gate;
        m_gate_time[i] = gate_time;
        notify(id);
    }

    void complete_group(int g) {
        const auto& members = m_plan.groups[static_cast<std::size_t>(g)];
        const double t0 = m_group_t0[static_cast<std::size_t>(g)];
        const int gate = m_group_gate[static_cast<std::size_t>(g)];
        const auto& first = m_plan.ops[static_cast<std::size_t>(members.front())];
        const double comm =
            first.seconds * m_r.comm_factor[static_cast<std::size_t>(members.front())];
        double widest = 0.0;
        if (first.kind == op_kind::layers)
            for (int id : members)
                widest = std::max(widest, layer_work(id));
        for (int id : members) {
            const auto i = static_cast<std::size_t>(id);
            const auto& op = m_plan.ops[i];
            double end = t0 + comm;
            if (op.kind == op_kind::layers) {
                const double own = layer_work(id);
                end = t0 + op.layers * comm + (op.layers - 1) * widest + own;
                m_r.own_layer_seconds[i] = own;
                m_r.layer_period_seconds[i] = comm + widest;
            }
            m_done[i] = 1;
            m_r.end_seconds[i] = end;
            m_r.sync_seconds[i] = t0;
            m_gate[i] = gate;
            m_gate_time[i] = t0;
            push(stream_of(op));
            notify(id);
        }
    }

    void advance(int s) {
        const auto si = static_cast<std::size_t>(s);
        const auto& ops = stream_ops(s);
        while (m_pos[si] < ops.size()) {
            const int id = ops[m_pos[si]];
            const auto i = static_cast<std::size_t>(id);
            if (m_done[i]) {
                m_clock[si] = m_r.end_seconds[i];
                m_last[si] = id;
                ++m_pos[si];
                continue;
            }
            if (m_arrived[i])
                return; // in a group that has not completed
            const auto& op = m_plan.ops[i];
            const double clock = m_clock[si];
            double dep = -std::numeric_limits<double>::infinity();
            if (op.peer >= 0 && op.kind != op_kind::send) {
                const auto p = static_cast<std::size_t>(op.peer);
                if (!m_done[p]) {
                    m_waiting[p] = s;
                    return;
                }
                dep = op.after_layers > 0
                          ? layer_end_seconds(m_r, m_plan.ops[p], op.peer, op.after_layers)
                          : m_r.end_seconds[p];
            }
            const bool dep_binds = dep > clock;
            const int gate = dep_binds ? op.peer : m_last[si];
            switch (op.kind) {
            case op_kind::compute: {
                const double start = std::max(clock, dep);
                finish(id, start, start + op.seconds * m_r.compute_factor[i], gate, start);
                break;
            }
            case op_kind::send:
                finish(id, clock, clock + op.seconds * m_r.comm_factor[i], m_last[si], clock);
                break;
            case op_kind::recv: {
                const double end = std::max(clock, dep);
                finish(id, clock, end, gate, end);
                break;
            }
            case op_kind::layers:
            case op_kind::collective: {
                const double arrival = std::max(clock, dep);
                m_arrived[i] = 1;
                m_r.start_seconds[i] = arrival;
                const auto g = static_cast<std::size_t>(op.group);
                if (arrival >= m_group_t0[g]) {
                    m_group_t0[g] = arrival;
                    m_group_gate[g] = gate;
                }
                if (++m_group_count[g] == static_cast<int>(m_plan.groups[g].size()))
                    complete_group(op.group);
                else
                    return;
                break;
            }
            }
        }
    }

    void account() {
        double step = 0.0;
        for (double e : m_r.end_seconds)
            step = std::max(step, e);
        m_r.step_seconds = step;
        for (std::size_t u = 0; u < m_plan.units.size(); ++u) {
            auto& t = m_r.units[u];
            double prev_end = 0.0;
            for (int id : m_plan.units[u].main) {
                const auto i = static_cast<std::size_t>(id);
                const auto& op = m_plan.ops[i];
                const double span = m_r.end_seconds[i] - m_r.start_seconds[i];
                switch (op.kind) {
                case op_kind::compute:
                    t.exposed_comm_seconds += m_r.start_seconds[i] - prev_end; // DP wait
                    t.busy_seconds += span;
                    break;
                case op_kind::layers: {
                    const auto& c = m_plan.costs[static_cast<std::size_t>(op.cost)];
                    const double f = m_r.compute_factor[i];
                    const double work = op.layers * c.compute_seconds() * f;
                    t.busy_seconds += work;
                    t.attention_seconds += op.layers * c.attention_seconds * f;
                    t.exposed_comm_seconds += span - work;
                    break;
                }
                case op_kind::recv: {
                    // Waiting before the sender started is a bubble; the transfer is exposed.
                    const double send_start = m_r.start_seconds[static_cast<std::size_t>(op.peer)];
                    t.exposed_comm_seconds += std::max(
                        0.0, m_r.end_seconds[i] - std::max(m_r.start_seconds[i], send_start));
                    break;
                }
                case op_kind::send:
                case op_kind::collective:
                    t.exposed_comm_seconds += span;
                    break;
                }
                prev_end = m_r.end_seconds[i];
            }
            for (int id : m_plan.units[u].dp)
                t.dp_comm_seconds += m_r.end_seconds[static_cast<std::size_t>(id)] -
                                     m_r.start_seconds[static_cast<std::size_t>(id)];
            t.idle_seconds = std::max(0.0, step - t.busy_seconds - t.exposed_comm_seconds);
        }
    }

    void trace_critical_path() {
        int last = -1;
        double best = -1.0;
        for (std::size_t i = 0; i < m_plan.ops.size(); ++i)
            if (m_r.end_seconds[i] > best) {
                best = m_r.end_seconds[i];
                last = static_cast<int>(i);
            }
        double t = best;
        for (int x = last; x >= 0;) {
            const auto i = static_cast<std::size_t>(x);
            const auto& op = m_plan.ops[i];
            critical_segment seg{x, op.unit, m_gate_time[i], t};
            if (op.kind == op_kind::layers) {
                double widest = -1.0;
                for (int id : m_plan.groups[static_cast<std::size_t>(op.group)]) {
                    const double w = m_r.own_layer_seconds[static_cast<std::size_t>(id)];
                    if (w > widest) {
                        widest = w;
                        seg.compute_unit = m_plan.ops[static_cast<std::size_t>(id)].unit;
                    }
                }
            }
            m_r.critical_path.push_back(seg);
            t = m_gate_time[i];
            x = m_gate[i];
        }
        std::reverse(m_r.critical_path.begin(), m_r.critical_path.end());
    }

    const step_plan& m_plan;
    sim_result m_r;
    std::vector<char> m_done, m_arrived, m_in_list;
    std::vector<int> m_waiting, m_gate, m_group_count, m_group_gate, m_last, m_list;
    std::vector<double> m_gate_time, m_group_t0, m_clock;
    std::vector<std::size_t> m_pos;
};

} // namespace

double layer_end_seconds(const sim_result& r, const plan_op& op, int op_id, int k) {
    const auto i = static_cast<std::size_t>(op_id);
    const double comm = op.seconds * r.comm_factor[i];
    return r.sync_seconds[i] + (k - 1) * r.layer_period_seconds[i] + comm + r.own_layer_seconds[i];
}

sim_result simulate(const step_plan& plan, const std::vector<fault>& faults) {
    for (const auto& f : faults)
        validate_fault(f, plan.job_layout);
    return engine(plan, faults).run();
}

} // namespace wlb::runtime
