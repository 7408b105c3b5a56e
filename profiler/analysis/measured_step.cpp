#include "profiler/analysis/measured_step.hpp"

#include "base/error.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <limits>
#include <map>

namespace wlb::profiler {
namespace {

using runtime::event_kind;
using runtime::lane;
using runtime::phase;

// Durations are written in afterwards; the model only gives the plan its shape.
class shape_only_model final : public runtime::duration_model {
public:
    explicit shape_only_model(int layers) : m_layers(layers) {}
    [[nodiscard]] runtime::plan_shape shape() const override {
        runtime::plan_shape s;
        s.layers = m_layers;
        s.layer_params = 1.0; // buckets come from plan_options::chunk_buckets
        return s;
    }
    [[nodiscard]] double linear_fwd_seconds(std::int64_t) const override { return 0.0; }
    [[nodiscard]] double linear_bwd_seconds(std::int64_t) const override { return 0.0; }
    [[nodiscard]] double attention_fwd_seconds(const runtime::cp_shard&) const override {
        return 0.0;
    }
    [[nodiscard]] double attention_bwd_seconds(const runtime::cp_shard&) const override {
        return 0.0;
    }
    [[nodiscard]] double output_layer_fwd_seconds(std::int64_t) const override { return 0.0; }
    [[nodiscard]] double output_layer_bwd_seconds(std::int64_t) const override { return 0.0; }
    [[nodiscard]] double collective_seconds(runtime::collective_kind, double,
                                            std::span<const int>) const override {
        return 0.0;
    }
    [[nodiscard]] double p2p_seconds(double, int, int) const override { return 0.0; }
    [[nodiscard]] double optimizer_seconds(double) const override { return 0.0; }

private:
    int m_layers;
};

struct slot_acc {
    double linear = 0, attention = 0, output = 0, tp = 0, send = 0, send_bytes = 0;
    bool present = false;
    std::int64_t first = std::numeric_limits<std::int64_t>::max();
    /// How often each attention or linear op name occurs: a layer runs each once (the
    /// simulator's one "linear fwd", the CPU runtime's "qkv proj", "out proj", "mlp" GEMMs).
    std::vector<std::pair<std::int32_t, int>> op_counts;
    void count(std::int32_t name, int times) {
        for (auto& [n, c] : op_counts)
            if (n == name) {
                c += times;
                return;
            }
        op_counts.emplace_back(name, times);
    }
    /// Layers the slot shows: the most times one op name occurs (1 when none).
    [[nodiscard]] int layers() const {
        int most = 1;
        for (const auto& [n, c] : op_counts)
            most = std::max(most, c);
        return most;
    }
};

bool is_output_layer(std::string_view name) {
    return name.substr(0, 12) == "output layer";
}

std::string slot_text(int m, int v, bool bwd) {
    return fmt::format("micro-batch {} chunk {} {}", m, v, bwd ? "backward" : "forward");
}

/// The measurement of one step, in the steps that have names: each unit's slots gathered from
/// its TP members' events, the slots filled in (and each chunk's layer count), the pipeline
/// schedule that explains every unit's order, and the step's collectives.
class step_measurer {
public:
    step_measurer(const job_trace& job, const step_index& index, std::int64_t step,
                  const std::vector<int>& replicas, std::string& why)
        : m_job(job), m_index(index), m_step(step), m_why(why), full(job.job_layout), tp(full.tp()),
          cp(full.cp()), pp(full.pp()), vpp(full.vpp()),
          dp(replicas.empty() ? full.dp() : static_cast<int>(replicas.size())) {
        m.step = step;
        m.full_layout = full;
        if (!replicas.empty())
            m.replica_ids = replicas;
        m.job_layout = replicas.empty() ? full : runtime::layout(tp, cp, pp, dp, vpp, full.order());
        // The job's coordinates and ranks of the replicas measured.
        sub_of.assign(static_cast<std::size_t>(full.dp()), -1);
        for (int d = 0; d < dp; ++d)
            sub_of[static_cast<std::size_t>(m.job_dp(d))] = d;
        units = cp * pp * dp;
    }

    std::optional<measured_step> run(const std::vector<const collective_instance*>& instances) {
        if (!gather_slots() || !fill_slots() || !find_schedule())
            return std::nullopt;
        add_collectives(instances);
        return std::move(m);
    }

private:
    int rank_of(int t, int c, int p, int d) const { return full.rank_of({t, c, p, m.job_dp(d)}); }

    /// Per unit, per (micro-batch, chunk, pass): the TP member with the most compute, the least
    /// TP and send time among the members; the step's span; micro-batches per replica.
    bool gather_slots() {
        const auto& job = m_job;
        const auto step = m_step;
        auto& why = m_why;
        best.resize(static_cast<std::size_t>(units));
        min_tp.resize(static_cast<std::size_t>(units));
        min_send.resize(static_cast<std::size_t>(units));
        m.optimizer_s.assign(static_cast<std::size_t>(units), 0.0);
        std::int64_t lo = std::numeric_limits<std::int64_t>::max(),
                     hi = std::numeric_limits<std::int64_t>::min();
        max_mb.assign(static_cast<std::size_t>(dp), 0);
        for (int d = 0; d < dp; ++d)
            for (int p = 0; p < pp; ++p)
                for (int c = 0; c < cp; ++c) {
                    const int u = m.unit_of(c, p, d);
                    bool any_member = false;
                    for (int t = 0; t < tp; ++t) {
                        const int r = rank_of(t, c, p, d);
                        const auto& rt = job.ranks[static_cast<std::size_t>(r)];
                        if (!rt.present)
                            continue;
                        const auto span = m_index.events(r, step);
                        if (span.empty())
                            continue;
                        any_member = true;
                        std::map<std::tuple<int, int, int>, slot_acc> mine;
                        double optimizer = 0.0;
                        for (const auto& sm : rt.summaries)
                            if (sm.step == step) {
                                lo = std::min(lo, sm.first_ns);
                                hi = std::max(hi, sm.last_ns);
                            }
                        for (std::uint32_t i : span) {
                            const auto& e = rt.events[i];
                            const double s = static_cast<double>(e.dur_ns) * 1e-9;
                            if (e.ph == phase::optimizer) {
                                if (e.kind == event_kind::compute)
                                    optimizer += s;
                                continue;
                            }
                            if (e.micro_batch < 0 || (e.ph != phase::fwd && e.ph != phase::bwd))
                                continue;
                            const int v = std::max<int>(0, e.virtual_stage);
                            auto& a = mine[{e.micro_batch, v, e.ph == phase::bwd ? 1 : 0}];
                            if (e.kind == event_kind::compute) {
                                a.present = true;
                                a.first = std::min(a.first, e.start_ns);
                                if (is_output_layer(job.names[e.name])) {
                                    a.output += s;
                                    continue;
                                }
                                switch (e.work) {
                                case work_class::attention:
                                    a.attention += s;
                                    a.count(e.name, e.count);
                                    break;
                                case work_class::linear:
                                case work_class::mixed:
                                    a.linear += s;
                                    a.count(e.name, e.count);
                                    break;
                                default:
                                    a.linear += s;
                                    break;
                                }
                            } else if (e.where == lane::tp) {
                                a.tp += s;
                            } else if (e.kind == event_kind::send) {
                                a.send += s;
                                a.send_bytes += e.bytes;
                            }
                        }
                        m.optimizer_s[static_cast<std::size_t>(u)] =
                            std::max(m.optimizer_s[static_cast<std::size_t>(u)], optimizer);
                        auto& b = best[static_cast<std::size_t>(u)];
                        for (auto& [key, a] : mine) {
                            if (a.present)
                                max_mb[static_cast<std::size_t>(d)] = std::max(
                                    max_mb[static_cast<std::size_t>(d)], std::get<0>(key) + 1);
                            auto [it, fresh] = b.try_emplace(key, a);
                            if (!fresh &&
                                a.linear + a.attention + a.output >
                                    it->second.linear + it->second.attention + it->second.output)
                                it->second = a;
                            auto& mt = min_tp[static_cast<std::size_t>(u)];
                            auto [jt, f2] = mt.try_emplace(key, a.tp);
                            if (!f2)
                                jt->second = std::min(jt->second, a.tp);
                            auto& ms = min_send[static_cast<std::size_t>(u)];
                            auto [kt, f3] = ms.try_emplace(key, a.send);
                            if (!f3)
                                kt->second = std::min(kt->second, a.send);
                        }
                    }
                    if (!any_member) {
                        why = fmt::format(
                            "no trace of step {} for the TP group of rank {} (cp{} pp{} "
                            "dp{})",
                            step, rank_of(0, c, p, d), c, p, m.job_dp(d));
                        return false;
                    }
                }
        m.measured_step_s = hi > lo ? static_cast<double>(hi - lo) * 1e-9 : 0.0;
        m.start_ns = lo;
        m.micro_batches = max_mb;
        m.max_micro_batches = *std::max_element(max_mb.begin(), max_mb.end());
        if (m.max_micro_batches == 0) {
            why = fmt::format("step {} has no compute tied to a micro-batch and a forward or "
                              "backward pass; the what-if needs per-micro-batch events",
                              step);
            return false;
        }
        return true;
    }

    /// Every slot of every unit from the gathered accumulators; a chunk's layer count is the
    /// most slices any of its slots shows.
    bool fill_slots() {
        const auto& job = m_job;
        const auto step = m_step;
        auto& why = m_why;
        const int slots = m.max_micro_batches * vpp * 2;
        m.slots.assign(static_cast<std::size_t>(units),
                       std::vector<slot_cost>(static_cast<std::size_t>(slots)));
        chunk_layers.assign(static_cast<std::size_t>(pp * vpp), 0);
        for (int d = 0; d < dp; ++d)
            for (int p = 0; p < pp; ++p)
                for (int c = 0; c < cp; ++c) {
                    const int u = m.unit_of(c, p, d);
                    const auto& b = best[static_cast<std::size_t>(u)];
                    for (int mb = 0; mb < max_mb[static_cast<std::size_t>(d)]; ++mb)
                        for (int v = 0; v < vpp; ++v)
                            for (int pass = 0; pass < 2; ++pass) {
                                auto it = b.find({mb, v, pass});
                                if (it == b.end() || !it->second.present) {
                                    why = fmt::format(
                                        "rank {} (cp{} pp{} dp{}) has no compute for {} "
                                        "in step {}",
                                        rank_of(0, c, p, d), c, p, m.job_dp(d),
                                        slot_text(mb, v, pass == 1), step);
                                    return false;
                                }
                                const auto& a = it->second;
                                auto& s =
                                    m.slots[static_cast<std::size_t>(u)][static_cast<std::size_t>(
                                        m.slot_of(mb, v, pass ? phase::bwd : phase::fwd))];
                                s.present = true;
                                s.linear_s = a.linear;
                                s.attention_s = a.attention;
                                s.output_s = a.output;
                                s.tp_s = min_tp[static_cast<std::size_t>(u)].at({mb, v, pass});
                                s.send_s = min_send[static_cast<std::size_t>(u)].at({mb, v, pass});
                                s.send_bytes = a.send_bytes;
                                s.first_start_ns = a.first;
                                s.layers = job.per_layer_events ? a.layers() : 1;
                                auto& cl = chunk_layers[static_cast<std::size_t>(v * pp + p)];
                                cl = std::max(cl, s.layers);
                            }
                }
        // A chunk's layer count is the most slices any of its slots shows (a slot with fewer had
        // layers of zero work: its time is spread over the chunk's layers).
        for (int d = 0; d < dp; ++d)
            for (int p = 0; p < pp; ++p)
                for (int c = 0; c < cp; ++c)
                    for (int mb = 0; mb < max_mb[static_cast<std::size_t>(d)]; ++mb)
                        for (int v = 0; v < vpp; ++v)
                            for (auto ph : {phase::fwd, phase::bwd}) {
                                auto& s = m.slots[static_cast<std::size_t>(m.unit_of(c, p, d))]
                                                 [static_cast<std::size_t>(m.slot_of(mb, v, ph))];
                                s.layers = chunk_layers[static_cast<std::size_t>(v * pp + p)];
                            }
        m.partition.layers = chunk_layers;
        m.partition_known = job.per_layer_events;
        return true;
    }

    /// The pipeline order: the schedule that explains every unit's order of slots.
    bool find_schedule() {
        const auto step = m_step;
        auto& why = m_why;
        std::vector<runtime::schedule_options> candidates;
        std::vector<std::string> names;
        candidates.push_back({});
        names.push_back(vpp > 1 ? "interleaved" : "1f1b");
        if (vpp > 1)
            for (int n = pp + 1; n <= m.max_micro_batches; ++n) {
                candidates.push_back({n});
                names.push_back(fmt::format("llama3:{}", n));
            }
        std::string mismatch;
        for (std::size_t k = 0; k < candidates.size(); ++k) {
            bool fits = true;
            for (int d = 0; d < dp && fits; ++d)
                for (int p = 0; p < pp && fits; ++p) {
                    std::vector<runtime::pipeline_slot> order;
                    try {
                        order = runtime::pipeline_order(
                            pp, vpp, max_mb[static_cast<std::size_t>(d)], p, candidates[k]);
                    } catch (const wlb::error&) {
                        fits = false;
                        break;
                    }
                    for (int c = 0; c < cp && fits; ++c) {
                        const auto& slots_u = m.slots[static_cast<std::size_t>(m.unit_of(c, p, d))];
                        std::vector<std::pair<std::int64_t, runtime::pipeline_slot>> seen;
                        for (const auto& o : order) {
                            const auto ph = o.phase == runtime::pass::bwd ? phase::bwd : phase::fwd;
                            seen.push_back({slots_u[static_cast<std::size_t>(m.slot_of(
                                                        o.micro_batch, o.virtual_stage, ph))]
                                                .first_start_ns,
                                            o});
                        }
                        std::stable_sort(
                            seen.begin(), seen.end(),
                            [](const auto& a, const auto& b) { return a.first < b.first; });
                        for (std::size_t i = 0; i < order.size(); ++i)
                            if (!(seen[i].second == order[i])) {
                                fits = false;
                                if (mismatch.empty())
                                    mismatch = fmt::format(
                                        "rank {} (pp{}) runs {} as its slot {}, where {} runs {}",
                                        rank_of(0, c, p, d), p,
                                        slot_text(seen[i].second.micro_batch,
                                                  seen[i].second.virtual_stage,
                                                  seen[i].second.phase == runtime::pass::bwd),
                                        i, names[k],
                                        slot_text(order[i].micro_batch, order[i].virtual_stage,
                                                  order[i].phase == runtime::pass::bwd));
                                break;
                            }
                    }
                }
            if (fits) {
                m.schedule = candidates[k];
                m.schedule_name = names[k];
                mismatch.clear();
                break;
            }
        }
        if (m.schedule_name.empty()) {
            why =
                fmt::format("step {}: the pipeline order is neither 1F1B nor interleaved 1F1B ({})",
                            step, mismatch);
            return false;
        }

        return true;
    }

    /// The step's collectives: CP per layer into the slots, DP buckets per stage and chunk, the
    /// optimizer's DP all-reduce into the units' optimizer time.
    void add_collectives(const std::vector<const collective_instance*>& instances) {
        const auto& job = m_job;
        std::map<std::tuple<int, int, int, int, int>, double> cp_sum; // (d, p, m, v, pass)
        std::map<std::pair<int, int>, std::vector<std::pair<std::int64_t, bucket_cost>>> dp_buckets;
        for (const auto* inst : instances) {
            const auto& g = job.groups[static_cast<std::size_t>(inst->group)];
            double pure = std::numeric_limits<double>::max();
            std::int64_t first_start = std::numeric_limits<std::int64_t>::max();
            for (const auto& mem : inst->members) {
                const auto& e = job.ranks[static_cast<std::size_t>(mem.rank)].events[mem.event];
                pure = std::min(pure, static_cast<double>(e.dur_ns) * 1e-9);
                first_start = std::min(first_start, e.start_ns);
            }
            const auto& m0 = inst->members.front();
            const auto& e0 = job.ranks[static_cast<std::size_t>(m0.rank)].events[m0.event];
            auto c0 = full.coords_of(m0.rank);
            if (sub_of[static_cast<std::size_t>(c0.dp)] < 0 && g.where != lane::dp)
                continue; // a replica left out of the what-if
            c0.dp = std::max(0, sub_of[static_cast<std::size_t>(c0.dp)]);
            if (g.where == lane::cp && c0.tp == 0 && e0.micro_batch >= 0 &&
                (e0.ph == phase::fwd || e0.ph == phase::bwd)) {
                cp_sum[{c0.dp, c0.pp, e0.micro_batch, std::max<int>(0, e0.virtual_stage),
                        e0.ph == phase::bwd ? 1 : 0}] += pure;
            } else if (g.where == lane::dp && c0.tp == 0) {
                if (e0.ph == phase::optimizer) {
                    for (const auto& mem : inst->members) {
                        const auto c = full.coords_of(mem.rank);
                        const int sd = sub_of[static_cast<std::size_t>(c.dp)];
                        if (sd < 0)
                            continue;
                        m.optimizer_s[static_cast<std::size_t>(m.unit_of(c.cp, c.pp, sd))] += pure;
                    }
                } else {
                    dp_buckets[{c0.pp, std::max<int>(0, e0.virtual_stage)}].push_back(
                        {first_start, {pure, e0.bytes}});
                }
            }
        }
        for (auto& [key, total] : cp_sum) {
            const auto [d, p, mb, v, pass] = key;
            if (d >= dp || mb >= max_mb[static_cast<std::size_t>(d)])
                continue;
            const int layers = chunk_layers[static_cast<std::size_t>(v * pp + p)];
            for (int c = 0; c < cp; ++c)
                m.slots[static_cast<std::size_t>(m.unit_of(c, p, d))]
                       [static_cast<std::size_t>(m.slot_of(mb, v, pass ? phase::bwd : phase::fwd))]
                           .cp_comm_per_layer_s = total / layers;
        }
        m.buckets.assign(static_cast<std::size_t>(pp),
                         std::vector<std::vector<bucket_cost>>(static_cast<std::size_t>(vpp)));
        for (auto& [key, list] : dp_buckets) {
            std::stable_sort(list.begin(), list.end(),
                             [](const auto& x, const auto& y) { return x.first < y.first; });
            auto& out = m.buckets[static_cast<std::size_t>(key.first)]
                                 [static_cast<std::size_t>(std::min(key.second, vpp - 1))];
            for (const auto& [t, s] : list)
                out.push_back(s);
        }
    }

    const job_trace& m_job;
    const step_index& m_index;
    std::int64_t m_step;
    std::string& m_why;
    const runtime::layout& full;
    int tp, cp, pp, vpp, dp;
    int units = 0;
    measured_step m;
    std::vector<int> sub_of;       ///< the job's DP index -> the measured replica's
    std::vector<int> max_mb;       ///< micro-batches per measured replica
    std::vector<int> chunk_layers; ///< layers per (chunk, stage): v * pp + p
    /// Per unit: slot accumulators, and the least TP and send time over the TP members, keyed
    /// by (micro-batch, chunk, pass).
    std::vector<std::map<std::tuple<int, int, int>, slot_acc>> best;
    std::vector<std::map<std::tuple<int, int, int>, double>> min_tp, min_send;
};

} // namespace

std::optional<measured_step> measure_step(const job_trace& job, const step_index& index,
                                          std::int64_t step,
                                          const std::vector<const collective_instance*>& instances,
                                          std::string& why, const std::vector<int>& replicas) {
    return step_measurer(job, index, step, replicas, why).run(instances);
}

runtime::step_plan measured_plan(const measured_step& m) {
    const auto& l = m.job_layout;
    runtime::sharded_step batch;
    batch.step = m.step;
    batch.replicas.resize(static_cast<std::size_t>(l.dp()));
    for (int d = 0; d < l.dp(); ++d) {
        auto& rep = batch.replicas[static_cast<std::size_t>(d)];
        rep.resize(static_cast<std::size_t>(m.micro_batches[static_cast<std::size_t>(d)]));
        for (auto& mb : rep) {
            mb.ranks.resize(static_cast<std::size_t>(l.cp()));
            for (auto& shard : mb.ranks)
                shard.chunks.push_back({0, 0, 1});
        }
    }
    runtime::plan_options options;
    options.schedule = m.schedule;
    options.partition = m.partition;
    options.chunk_buckets.assign(static_cast<std::size_t>(l.pp() * l.vpp()), 0);
    for (int p = 0; p < l.pp(); ++p)
        for (int v = 0; v < l.vpp(); ++v)
            options.chunk_buckets[static_cast<std::size_t>(v * l.pp() + p)] = static_cast<int>(
                m.buckets[static_cast<std::size_t>(p)][static_cast<std::size_t>(v)].size());
    const shape_only_model model(m.partition.total_layers());
    auto plan = runtime::build_step_plan(l, batch, model, options);
    write_durations(m, plan);
    return plan;
}

void write_durations(const measured_step& m, runtime::step_plan& plan) {
    using runtime::op_kind;
    struct cost_sum {
        double linear = 0, attention = 0, tp = 0;
        int layers = 0;
    };
    std::vector<cost_sum> sums(plan.costs.size());
    std::vector<int> bucket_seen(plan.units.size() * static_cast<std::size_t>(m.job_layout.vpp()),
                                 0);
    for (auto& op : plan.ops) {
        const auto& unit = plan.units[static_cast<std::size_t>(op.unit)];
        const slot_cost* s = nullptr;
        if (op.micro_batch >= 0 && (op.ph == phase::fwd || op.ph == phase::bwd))
            s = &m.slots[static_cast<std::size_t>(op.unit)][static_cast<std::size_t>(
                m.slot_of(op.micro_batch, std::max(0, op.virtual_stage), op.ph))];
        switch (op.kind) {
        case op_kind::layers: {
            auto& sum = sums[static_cast<std::size_t>(op.cost)];
            sum.linear += s->linear_s;
            sum.attention += s->attention_s;
            sum.tp += s->tp_s;
            sum.layers += op.layers;
            op.seconds = s->cp_comm_per_layer_s;
            break;
        }
        case op_kind::compute:
            op.seconds = op.ph == phase::optimizer
                             ? m.optimizer_s[static_cast<std::size_t>(op.unit)]
                             : (s ? s->output_s : 0.0);
            break;
        case op_kind::send:
            op.seconds = s ? s->send_s : 0.0;
            break;
        case op_kind::recv:
            break;
        case op_kind::collective: {
            const int v = std::max(0, op.virtual_stage);
            auto& k = bucket_seen[static_cast<std::size_t>(op.unit * m.job_layout.vpp() + v)];
            const auto& list =
                m.buckets[static_cast<std::size_t>(unit.where.pp)][static_cast<std::size_t>(v)];
            op.seconds =
                k < static_cast<int>(list.size()) ? list[static_cast<std::size_t>(k)].seconds : 0.0;
            ++k;
            break;
        }
        }
    }
    for (std::size_t i = 0; i < sums.size(); ++i) {
        if (sums[i].layers == 0)
            continue;
        const double n = sums[i].layers;
        plan.costs[i] = {sums[i].linear / n, sums[i].attention / n, sums[i].tp / n};
    }
}

} // namespace wlb::profiler
