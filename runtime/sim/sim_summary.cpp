#include "runtime/sim/sim_summary.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <map>

namespace wlb::runtime {
namespace {

double mean_busy(const sim_result& r, const step_plan& plan, auto&& keep) {
    double sum = 0.0;
    int n = 0;
    for (std::size_t u = 0; u < plan.units.size(); ++u)
        if (keep(plan.units[u].where)) {
            sum += r.units[u].busy_seconds;
            ++n;
        }
    return n ? sum / n : 0.0;
}

} // namespace

step_summary summarize_step(const step_plan& plan, const sim_result& r,
                            const std::vector<fault>& faults, int top) {
    step_summary s;
    s.step = plan.step;
    s.step_seconds = r.step_seconds;
    const double n = static_cast<double>(plan.units.size());
    double busy_sum = 0.0;
    for (const auto& t : r.units) {
        busy_sum += t.busy_seconds;
        s.max_busy_seconds = std::max(s.max_busy_seconds, t.busy_seconds);
        if (r.step_seconds > 0.0) {
            s.bubble_fraction += t.idle_seconds / r.step_seconds / n;
            s.exposed_comm_fraction += t.exposed_comm_seconds / r.step_seconds / n;
        }
    }
    const double mean = busy_sum / n;
    s.compute_imbalance = mean > 0.0 ? s.max_busy_seconds / mean : 1.0;

    std::map<std::string, double> by;
    for (const auto& seg : r.critical_path) {
        const auto& op = plan.ops[static_cast<std::size_t>(seg.op)];
        const double len = seg.to_seconds - seg.from_seconds;
        switch (op.kind) {
        case op_kind::compute:
            by[op.ph == phase::optimizer ? "optimizer" : "compute"] += len;
            break;
        case op_kind::send:
        case op_kind::recv:
            by["pp"] += len;
            break;
        case op_kind::collective:
            by["dp"] += len;
            break;
        case op_kind::layers: {
            const auto i = static_cast<std::size_t>(seg.op);
            const double comm = std::min(len, op.layers * op.seconds * r.comm_factor[i]);
            by["cp"] += comm;
            // The rest is paced by the slowest CP peer: its compute and its TP collectives.
            int pacing = seg.op;
            for (int id : plan.groups[static_cast<std::size_t>(op.group)])
                if (plan.ops[static_cast<std::size_t>(id)].unit == seg.compute_unit)
                    pacing = id;
            const auto& pop = plan.ops[static_cast<std::size_t>(pacing)];
            const auto& c = plan.costs[static_cast<std::size_t>(pop.cost)];
            const double w = r.own_layer_seconds[static_cast<std::size_t>(pacing)];
            const double tp = c.tp_seconds * r.tp_factor[static_cast<std::size_t>(pop.unit)];
            const double rest = len - comm;
            by["tp"] += w > 0.0 ? rest * tp / w : 0.0;
            by["compute"] += w > 0.0 ? rest * (w - tp) / w : rest;
            break;
        }
        }
    }
    for (const char* k : {"compute", "tp", "cp", "pp", "dp", "optimizer"})
        s.critical_path.emplace_back(k, by[k]);

    // The slowest ranks and why.
    std::vector<int> order(plan.units.size());
    for (std::size_t u = 0; u < order.size(); ++u)
        order[u] = static_cast<int>(u);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
        return r.units[static_cast<std::size_t>(a)].busy_seconds >
               r.units[static_cast<std::size_t>(b)].busy_seconds;
    });
    const layout& l = plan.job_layout;
    for (int k = 0; k < std::min<int>(top, static_cast<int>(order.size())); ++k) {
        const auto u = static_cast<std::size_t>(order[static_cast<std::size_t>(k)]);
        const auto& unit = plan.units[u];
        const auto& t = r.units[u];
        slow_rank_report rep;
        rep.rank = unit.rank;
        rep.where = unit.where;
        rep.busy_seconds = t.busy_seconds;
        rep.attention_seconds = t.attention_seconds;
        rep.exposed_comm_seconds = t.exposed_comm_seconds;
        rep.idle_seconds = t.idle_seconds;
        rep.busy_over_mean = mean > 0.0 ? t.busy_seconds / mean : 1.0;
        std::vector<std::pair<double, std::string>> reasons;
        for (const auto& f : faults) {
            const bool hits = (f.what == fault::kind::slow_rank &&
                               plan.unit_of_rank(f.rank) == static_cast<int>(u)) ||
                              (f.what == fault::kind::slow_stage && f.stage == unit.where.pp) ||
                              (f.what == fault::kind::heavy_micro_batch &&
                               (f.replica < 0 || f.replica == unit.where.dp));
            if (hits)
                reasons.emplace_back(1e9, fmt::format("injected {}", f.describe()));
        }
        const coords w = unit.where;
        auto excess = [&](double ref) {
            return ref > 0.0 ? t.busy_seconds / ref - 1.0 : 0.0;
        };
        if (l.cp() > 1) {
            const double e = excess(
                mean_busy(r, plan, [&](const coords& c) { return c.pp == w.pp && c.dp == w.dp; }));
            reasons.emplace_back(e, fmt::format("CP shard imbalance: {:.0f}% more compute than "
                                                "the mean of its CP group",
                                                100 * e));
        }
        if (l.dp() > 1) {
            const double mine = mean_busy(r, plan, [&](const coords& c) { return c.dp == w.dp; });
            const double e = mean > 0.0 ? mine / mean - 1.0 : 0.0;
            reasons.emplace_back(e, fmt::format("DP imbalance (packing): its replica's "
                                                "micro-batches carry {:.0f}% more compute than "
                                                "the mean replica",
                                                100 * e));
        }
        if (l.pp() > 1) {
            const double mine = mean_busy(r, plan, [&](const coords& c) { return c.pp == w.pp; });
            const double e = mean > 0.0 ? mine / mean - 1.0 : 0.0;
            reasons.emplace_back(e, fmt::format("stage partitioning: stage {} holds {:.0f}% more "
                                                "compute than the mean stage",
                                                w.pp, 100 * e));
        }
        std::sort(reasons.begin(), reasons.end(),
                  [](const auto& a, const auto& b) { return a.first > b.first; });
        for (const auto& [size, text] : reasons)
            if (size >= 0.01) {
                rep.why += (rep.why.empty() ? "" : "; ") + text;
            }
        if (rep.why.empty())
            rep.why = "balanced: within 1% of its CP, DP and stage peers";
        s.slowest.push_back(std::move(rep));
    }
    return s;
}

} // namespace wlb::runtime
