#include "profiler/analysis/attribution.hpp"

#include "base/error.hpp"
#include "profiler/analysis/batch_work.hpp"
#include "runtime/parallel/layout.hpp"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <map>
#include <numeric>

namespace wlb::profiler {
namespace {

using runtime::phase;

// Typical value of a set of peers: the lower median (of two, the lower). A cause slows a peer
// down, never speeds it up, so when half the peers are slowed (a slow link carries half of a
// group's transfers) the lower middle value is still an unaffected one.
double typical(std::vector<double> v) {
    if (v.empty())
        return 0.0;
    auto mid = v.begin() + static_cast<std::ptrdiff_t>((v.size() - 1) / 2);
    std::nth_element(v.begin(), mid, v.end());
    return *mid;
}

double median(std::vector<double> v) {
    if (v.empty())
        return 0.0;
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double mean(const std::vector<double>& v) {
    return v.empty() ? 0.0
                     : std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}

// Payloads within 1% of each other are the same transfer size (0: unknown, one class).
std::int64_t size_class(double bytes) {
    return bytes > 0.0 ? std::llround(std::log(bytes) * 100.0) : -1;
}

struct coords3 {
    int c, p, d;
};

class step_model {
public:
    explicit step_model(const measured_step& m) : m_m(m), m_l(m.job_layout) {}

    [[nodiscard]] coords3 where(int u) const {
        const int cp = m_l.cp(), pp = m_l.pp();
        return {u % cp, (u / cp) % pp, u / (cp * pp)};
    }
    [[nodiscard]] int mbs(int d) const { return m_m.micro_batches[static_cast<std::size_t>(d)]; }

    template <typename F>
    void each_slot(int u, F&& f) const {
        const int d = where(u).d;
        for (int mb = 0; mb < mbs(d); ++mb)
            for (int v = 0; v < m_l.vpp(); ++v)
                for (auto ph : {phase::fwd, phase::bwd})
                    f(mb, v, ph, m_m.slot_of(mb, v, ph));
    }

    /// Per unit: how much slower than its peers on the same linear work (>= 1). `tokens`
    /// ([unit][slot], may be empty) are the slots' tokens where the batches are known: linear
    /// time is then compared per token, so that peers with more tokens are not taken for slow.
    std::vector<double> worker_speed(double noise, std::string& note,
                                     const std::vector<std::vector<double>>& tokens = {}) const {
        const int units = m_m.units();
        std::vector<double> speed(static_cast<std::size_t>(units), 1.0);
        const int cp = m_l.cp(), dp = m_l.dp();
        auto per_layer = [&](int u, int slot) {
            const auto& s = m_m.slots[static_cast<std::size_t>(u)][static_cast<std::size_t>(slot)];
            double x = s.layers > 0 ? s.linear_s / s.layers : 0.0;
            if (!tokens.empty()) {
                const double n =
                    tokens[static_cast<std::size_t>(u)][static_cast<std::size_t>(slot)];
                x = n > 0 ? x / n : 0.0;
            }
            return x;
        };
        const bool by_cp = cp >= 2;
        if (!by_cp && dp < 2) {
            note = "one TP group per stage (cp = dp = 1): a slow worker cannot be told from its "
                   "stage; it is counted as stage partitioning";
            return speed;
        }
        for (int u = 0; u < units; ++u) {
            const auto w = where(u);
            std::vector<double> ratios;
            each_slot(u, [&](int mb, int, phase, int slot) {
                std::vector<double> peers;
                if (by_cp) {
                    for (int c = 0; c < cp; ++c)
                        peers.push_back(per_layer(m_m.unit_of(c, w.p, w.d), slot));
                } else {
                    for (int d = 0; d < dp; ++d)
                        if (mb < mbs(d))
                            peers.push_back(per_layer(m_m.unit_of(w.c, w.p, d), slot));
                }
                const double ref = typical(peers);
                const double x = per_layer(u, slot);
                if (ref > 0.0 && x > 0.0)
                    ratios.push_back(x / ref);
            });
            if (ratios.empty())
                continue;
            // A slow worker is slow on its work as a whole: the median of its slots over its
            // peers, and at least two thirds of the slots. One slot far over and the rest not is
            // a hiccup (preemption, a page fault; found on `wlbtune run` traces of the CPU
            // backend, whose linear ops take milliseconds: a 20 ms preemption tripled one of
            // them); a micro-batch whose reference peer was itself held up (both its passes)
            // does not clear a slow worker of many slots.
            const double r = median(ratios);
            const auto over = std::count_if(ratios.begin(), ratios.end(),
                                            [&](double x) { return x > 1.0 + noise; });
            const bool most = 3 * over >= 2 * static_cast<std::ptrdiff_t>(ratios.size());
            speed[static_cast<std::size_t>(u)] = r > 1.0 + noise && most ? r : 1.0;
        }
        if (!by_cp && tokens.empty()) {
            // Compared across replicas: a replica whose units are all slower by one factor has
            // more work (DP imbalance), not a slow worker.
            for (int d = 0; d < dp; ++d) {
                double lo = 1e300, hi = 0.0;
                for (int p = 0; p < m_l.pp(); ++p) {
                    const double s = speed[static_cast<std::size_t>(m_m.unit_of(0, p, d))];
                    lo = std::min(lo, s);
                    hi = std::max(hi, s);
                }
                if (lo > 1.0 && hi / lo < 1.0 + 2 * noise && m_l.pp() > 1)
                    for (int p = 0; p < m_l.pp(); ++p)
                        speed[static_cast<std::size_t>(m_m.unit_of(0, p, d))] = 1.0;
            }
            note = "cp = 1: worker speed compared across DP replicas on the same micro-batch "
                   "index (assumes replicas' micro-batches of equal tokens)";
        }
        if (!by_cp && !tokens.empty()) {
            note = "cp = 1: worker speed compared across DP replicas per token on the same "
                   "micro-batch index (the batches give the tokens)";
        }
        return speed;
    }

    const measured_step& m() const { return m_m; }
    const runtime::layout& layout() const { return m_l; }

private:
    const measured_step& m_m;
    const runtime::layout& m_l;
};

void scale_compute(slot_cost& s, double f) {
    s.linear_s *= f;
    s.attention_s *= f;
    s.output_s *= f;
}

double compute_of(const slot_cost& s) {
    return s.linear_s + s.attention_s + s.output_s;
}

// --- the evening operations, on a copy of the measured step -------------------------------

// Micro-batches of a replica to the same total work, each keeping how its work is split over
// CP ranks, stages and passes (a heavy micro-batch is heavy everywhere it goes).
void even_pp(measured_step& m, const step_model& sm) {
    const auto& l = sm.layout();
    for (int d = 0; d < l.dp(); ++d) {
        const int n = sm.mbs(d);
        std::vector<double> work(static_cast<std::size_t>(n), 0.0);
        for (int u = 0; u < m.units(); ++u) {
            if (sm.where(u).d != d)
                continue;
            sm.each_slot(u, [&](int mb, int, phase, int slot) {
                work[static_cast<std::size_t>(mb)] += compute_of(
                    m.slots[static_cast<std::size_t>(u)][static_cast<std::size_t>(slot)]);
            });
        }
        const double avg = mean(work);
        for (int u = 0; u < m.units(); ++u) {
            if (sm.where(u).d != d)
                continue;
            sm.each_slot(u, [&](int mb, int, phase, int slot) {
                const double w = work[static_cast<std::size_t>(mb)];
                if (w > 0.0)
                    scale_compute(
                        m.slots[static_cast<std::size_t>(u)][static_cast<std::size_t>(slot)],
                        avg / w);
            });
        }
    }
}

void even_cp(measured_step& m, const step_model& sm) {
    const auto& l = sm.layout();
    const int cp = l.cp();
    if (cp < 2)
        return;
    for (int d = 0; d < l.dp(); ++d)
        for (int p = 0; p < l.pp(); ++p)
            for (int slot = 0; slot < sm.mbs(d) * l.vpp() * 2; ++slot) {
                slot_cost avg;
                for (int c = 0; c < cp; ++c) {
                    const auto& s = m.slots[static_cast<std::size_t>(m.unit_of(c, p, d))]
                                           [static_cast<std::size_t>(slot)];
                    avg.linear_s += s.linear_s / cp;
                    avg.attention_s += s.attention_s / cp;
                    avg.output_s += s.output_s / cp;
                }
                for (int c = 0; c < cp; ++c) {
                    auto& s = m.slots[static_cast<std::size_t>(m.unit_of(c, p, d))]
                                     [static_cast<std::size_t>(slot)];
                    s.linear_s = avg.linear_s;
                    s.attention_s = avg.attention_s;
                    s.output_s = avg.output_s;
                }
            }
}

// Compute totals per group of units, by `key(unit)` in [0, n).
template <typename Key>
std::vector<double> totals(const measured_step& m, int n, Key&& key) {
    std::vector<double> t(static_cast<std::size_t>(n), 0.0);
    for (int u = 0; u < m.units(); ++u)
        for (const auto& s : m.slots[static_cast<std::size_t>(u)])
            if (s.present)
                t[static_cast<std::size_t>(key(u))] += compute_of(s);
    return t;
}

// `with_optimizer`: the optimizer step moves with the work too (it follows the parameters a
// stage holds; it does not follow the data a replica holds).
template <typename Key>
void even_totals(measured_step& m, int n, Key&& key, bool with_optimizer) {
    const auto t = totals(m, n, key);
    const double avg = mean(t);
    for (int u = 0; u < m.units(); ++u) {
        const double tot = t[static_cast<std::size_t>(key(u))];
        if (tot <= 0.0)
            continue;
        for (auto& s : m.slots[static_cast<std::size_t>(u)])
            scale_compute(s, avg / tot);
        if (with_optimizer)
            m.optimizer_s[static_cast<std::size_t>(u)] *= avg / tot;
    }
}

void even_dp(measured_step& m, const step_model& sm) {
    even_totals(
        m, sm.layout().dp(), [&](int u) { return sm.where(u).d; }, false);
}

void even_stages(measured_step& m, const step_model& sm) {
    even_totals(
        m, sm.layout().pp(), [&](int u) { return sm.where(u).p; }, true);
}

// Communication: each transfer to the typical time of its peers. `ratios` (optional) collects
// (what, factor) for the report.
void even_comm(measured_step& m, const step_model& sm, std::vector<involvement>* found = nullptr) {
    const auto& l = sm.layout();
    const int cp = l.cp(), pp = l.pp(), dp = l.dp(), vpp = l.vpp();
    auto note = [&](std::string what, double value, double ref, int rank) {
        if (found && ref > 0.0 && value > ref * 1.05)
            found->push_back({std::move(what), value / ref, rank});
    };
    for (int d = 0; d < dp; ++d)
        for (int mb = 0; mb < sm.mbs(d); ++mb)
            for (auto ph : {phase::fwd, phase::bwd}) {
                // CP collectives per layer (one value per CP group and chunk).
                std::vector<double> cpv, tpv;
                std::map<std::int64_t, std::vector<double>> sendv; // by payload size
                for (int p = 0; p < pp; ++p)
                    for (int v = 0; v < vpp; ++v) {
                        const auto& s0 = m.slots[static_cast<std::size_t>(m.unit_of(0, p, d))]
                                                [static_cast<std::size_t>(m.slot_of(mb, v, ph))];
                        cpv.push_back(s0.cp_comm_per_layer_s);
                        for (int c = 0; c < cp; ++c) {
                            const auto& s = m.slots[static_cast<std::size_t>(m.unit_of(c, p, d))]
                                                   [static_cast<std::size_t>(m.slot_of(mb, v, ph))];
                            tpv.push_back(s.layers > 0 ? s.tp_s / s.layers : 0.0);
                            if (s.send_s > 0.0)
                                sendv[size_class(s.send_bytes)].push_back(s.send_s);
                        }
                    }
                const double cp_ref = typical(cpv), tp_ref = typical(tpv);
                std::map<std::int64_t, double> send_ref;
                for (auto& [k, vals] : sendv)
                    send_ref[k] = typical(vals);
                for (int p = 0; p < pp; ++p)
                    for (int v = 0; v < vpp; ++v)
                        for (int c = 0; c < cp; ++c) {
                            auto& s = m.slots[static_cast<std::size_t>(m.unit_of(c, p, d))]
                                             [static_cast<std::size_t>(m.slot_of(mb, v, ph))];
                            const int rank = m.job_rank(c, p, d);
                            if (c == 0)
                                note(fmt::format("CP collectives of pp{} dp{}", p, m.job_dp(d)),
                                     s.cp_comm_per_layer_s, cp_ref, rank);
                            s.cp_comm_per_layer_s = cp_ref;
                            if (s.layers > 0) {
                                note(fmt::format("TP collectives of rank {} (cp{} pp{} dp{})", rank,
                                                 c, p, m.job_dp(d)),
                                     s.tp_s / s.layers, tp_ref, rank);
                                s.tp_s = tp_ref * s.layers;
                            }
                            if (s.send_s > 0.0) {
                                note(fmt::format("PP sends of rank {} (cp{} pp{} dp{})", rank, c, p,
                                                 m.job_dp(d)),
                                     s.send_s, send_ref[size_class(s.send_bytes)], rank);
                                s.send_s = send_ref[size_class(s.send_bytes)];
                            }
                        }
            }
    // DP buckets: each to the typical time of the buckets of its size (of its place in the
    // order of its chunk when sizes are unknown).
    std::map<std::pair<std::int64_t, std::int64_t>, std::vector<double>> classes;
    auto class_of = [](const bucket_cost& bc, int v, std::size_t b) {
        return bc.bytes > 0
                   ? std::pair<std::int64_t, std::int64_t>{size_class(bc.bytes), -1}
                   : std::pair<std::int64_t, std::int64_t>{v, static_cast<std::int64_t>(b)};
    };
    for (int p = 0; p < pp; ++p)
        for (int v = 0; v < vpp; ++v) {
            const auto& list = m.buckets[static_cast<std::size_t>(p)][static_cast<std::size_t>(v)];
            for (std::size_t b = 0; b < list.size(); ++b)
                classes[class_of(list[b], v, b)].push_back(list[b].seconds);
        }
    std::map<std::pair<std::int64_t, std::int64_t>, double> refs;
    for (auto& [k, vals] : classes)
        refs[k] = typical(vals);
    for (int p = 0; p < pp; ++p)
        for (int v = 0; v < vpp; ++v) {
            auto& list = m.buckets[static_cast<std::size_t>(p)][static_cast<std::size_t>(v)];
            for (std::size_t b = 0; b < list.size(); ++b) {
                const double ref = refs[class_of(list[b], v, b)];
                note(fmt::format("DP gradient reduction of stage {}", p), list[b].seconds, ref,
                     m.job_rank(0, p, 0));
                list[b].seconds = ref;
            }
        }
}

void apply_speed(measured_step& m, const std::vector<double>& speed, bool divide) {
    for (int u = 0; u < m.units(); ++u) {
        const double f = speed[static_cast<std::size_t>(u)];
        if (f == 1.0)
            continue;
        for (auto& s : m.slots[static_cast<std::size_t>(u)])
            scale_compute(s, divide ? 1.0 / f : f);
        m.optimizer_s[static_cast<std::size_t>(u)] *= divide ? 1.0 / f : f;
    }
}

// Keeps the largest few, merged by name (the largest factor of each).
std::vector<involvement> top(std::vector<involvement> list, std::size_t n = 8) {
    std::map<std::string, involvement> best;
    for (auto& x : list) {
        auto [it, fresh] = best.try_emplace(x.what, x);
        if (!fresh && x.factor > it->second.factor)
            it->second = x;
    }
    list.clear();
    for (auto& [k, v] : best)
        list.push_back(v);
    std::sort(list.begin(), list.end(),
              [](const involvement& a, const involvement& b) { return a.factor > b.factor; });
    if (list.size() > n)
        list.resize(n);
    return list;
}

class step_runner {
public:
    explicit step_runner(const measured_step& m) : m_plan(measured_plan(m)) {}
    double run(const measured_step& m) {
        write_durations(m, m_plan);
        return runtime::simulate(m_plan).step_seconds;
    }
    runtime::step_plan& plan() { return m_plan; }

private:
    runtime::step_plan m_plan;
};

measured_step evened(const measured_step& base, const step_model& sm,
                     const std::vector<double>& speed, const std::vector<cause>& which) {
    measured_step m = base;
    const bool all_worker =
        std::find(which.begin(), which.end(), cause::slow_worker) != which.end();
    apply_speed(m, speed, true);
    auto has = [&](cause c) {
        return std::find(which.begin(), which.end(), c) != which.end();
    };
    if (has(cause::communication))
        even_comm(m, sm);
    if (has(cause::stage_partitioning))
        even_stages(m, sm);
    if (has(cause::dp_imbalance))
        even_dp(m, sm);
    if (has(cause::pp_packing))
        even_pp(m, sm);
    if (has(cause::cp_sharding))
        even_cp(m, sm);
    if (!all_worker)
        apply_speed(m, speed, false);
    return m;
}

// `l`: the job's layout.
std::string unit_text(const runtime::layout& l, int rank) {
    const auto c = l.coords_of(rank);
    if (l.tp() > 1)
        return fmt::format("ranks {}-{} (TP group of cp{} pp{} dp{})", rank, rank + l.tp() - 1,
                           c.cp, c.pp, c.dp);
    return fmt::format("rank {} (cp{} pp{} dp{})", rank, c.cp, c.pp, c.dp);
}

// What each cause involves, from the normalized (speed divided out) measured step.
void describe(const measured_step& norm, const step_model& sm, const std::vector<double>& speed,
              step_attribution& out, double noise) {
    const auto& l = sm.layout();
    const int cp = l.cp(), pp = l.pp(), dp = l.dp();
    auto& workers = out.causes[static_cast<int>(cause::slow_worker)].involved;
    for (int u = 0; u < norm.units(); ++u)
        if (speed[static_cast<std::size_t>(u)] > 1.0 + noise) {
            const auto w = sm.where(u);
            const int rank = norm.job_rank(w.c, w.p, w.d);
            workers.push_back(
                {unit_text(norm.full_layout, rank), speed[static_cast<std::size_t>(u)], rank});
        }
    // PP packing: a micro-batch's compute over its replica's units, against the replica mean.
    auto& packing = out.causes[static_cast<int>(cause::pp_packing)].involved;
    auto& sharding = out.causes[static_cast<int>(cause::cp_sharding)].involved;
    for (int d = 0; d < dp; ++d) {
        const int n = sm.mbs(d);
        std::vector<double> per_mb(static_cast<std::size_t>(n), 0.0);
        for (int mb = 0; mb < n; ++mb) {
            std::vector<double> per_c(static_cast<std::size_t>(cp), 0.0);
            for (int p = 0; p < pp; ++p)
                for (int c = 0; c < cp; ++c)
                    for (int v = 0; v < l.vpp(); ++v)
                        for (auto ph : {phase::fwd, phase::bwd}) {
                            const double x = compute_of(
                                norm.slots[static_cast<std::size_t>(norm.unit_of(c, p, d))]
                                          [static_cast<std::size_t>(norm.slot_of(mb, v, ph))]);
                            per_mb[static_cast<std::size_t>(mb)] += x;
                            per_c[static_cast<std::size_t>(c)] += x;
                        }
            const double avg_c = mean(per_c);
            for (int c = 0; c < cp; ++c)
                if (avg_c > 0.0 && per_c[static_cast<std::size_t>(c)] > avg_c * (1.0 + noise))
                    sharding.push_back(
                        {fmt::format("dp{} micro-batch {}: CP rank {}", norm.job_dp(d), mb, c),
                         per_c[static_cast<std::size_t>(c)] / avg_c, norm.job_rank(c, 0, d)});
        }
        const double avg = mean(per_mb);
        for (int mb = 0; mb < n; ++mb)
            if (avg > 0.0 && per_mb[static_cast<std::size_t>(mb)] > avg * (1.0 + noise))
                packing.push_back({fmt::format("dp{} micro-batch {}", norm.job_dp(d), mb),
                                   per_mb[static_cast<std::size_t>(mb)] / avg, -1});
    }
    const auto rep = totals(norm, dp, [&](int u) { return sm.where(u).d; });
    const double rep_avg = mean(rep);
    for (int d = 0; d < dp; ++d)
        if (rep_avg > 0.0 && rep[static_cast<std::size_t>(d)] > rep_avg * (1.0 + noise))
            out.causes[static_cast<int>(cause::dp_imbalance)].involved.push_back(
                {fmt::format("DP replica {}", norm.job_dp(d)),
                 rep[static_cast<std::size_t>(d)] / rep_avg, -1});
    const auto st = totals(norm, pp, [&](int u) { return sm.where(u).p; });
    const double st_avg = mean(st);
    for (int p = 0; p < pp; ++p)
        if (st_avg > 0.0 && st[static_cast<std::size_t>(p)] > st_avg * (1.0 + noise))
            out.causes[static_cast<int>(cause::stage_partitioning)].involved.push_back(
                {fmt::format("stage {}", p), st[static_cast<std::size_t>(p)] / st_avg, -1});
    measured_step scratch = norm;
    std::vector<involvement> comm;
    even_comm(scratch, sm, &comm);
    out.causes[static_cast<int>(cause::communication)].involved = std::move(comm);
    for (auto& c : out.causes)
        c.involved = top(std::move(c.involved));
}

// Tokens of each [unit][slot] from the step's batch; empty when its shape is not the trace's.
std::vector<std::vector<double>> slot_tokens(const measured_step& m,
                                             const runtime::sharded_step& batch) {
    if (!shape_mismatch(m, batch).empty())
        return {};
    const auto& l = m.job_layout;
    const auto work = work_of(batch);
    std::vector<std::vector<double>> out(static_cast<std::size_t>(m.units()));
    for (int u = 0; u < m.units(); ++u)
        out[static_cast<std::size_t>(u)].assign(m.slots[static_cast<std::size_t>(u)].size(), 0.0);
    for (int d = 0; d < l.dp(); ++d)
        for (int mb = 0; mb < m.micro_batches[static_cast<std::size_t>(d)]; ++mb)
            for (int c = 0; c < l.cp(); ++c)
                for (int p = 0; p < l.pp(); ++p)
                    for (int v = 0; v < l.vpp(); ++v)
                        for (const auto ph : {phase::fwd, phase::bwd})
                            out[static_cast<std::size_t>(m.unit_of(c, p, d))]
                               [static_cast<std::size_t>(m.slot_of(mb, v, ph))] =
                                   work[static_cast<std::size_t>(d)][static_cast<std::size_t>(mb)]
                                       [static_cast<std::size_t>(c)]
                                           .tokens;
    return out;
}

// Layers per chunk that even the stages: stage p's per-layer cost c_p and fixed work O_p
// (output layer), T = (L + sum O_p / c_p) / sum 1 / c_p, L'_p = (T - O_p) / c_p, rounded by
// largest remainder with at least one layer per chunk. nullopt when it cannot be computed (the
// source does not give layers, a stage without layer work), "" when it is the current one.
std::optional<std::string> suggest_partition(const measured_step& norm, const step_model& sm) {
    if (!norm.partition_known)
        return std::nullopt;
    const auto& l = sm.layout();
    const int pp = l.pp(), vpp = l.vpp();
    std::vector<double> layer_cost(static_cast<std::size_t>(pp), 0.0),
        fixed(static_cast<std::size_t>(pp), 0.0);
    std::vector<int> layers(static_cast<std::size_t>(pp), 0);
    for (int p = 0; p < pp; ++p)
        for (int v = 0; v < vpp; ++v)
            layers[static_cast<std::size_t>(p)] +=
                norm.partition.layers[static_cast<std::size_t>(v * pp + p)];
    for (int u = 0; u < norm.units(); ++u) {
        const int p = sm.where(u).p;
        for (const auto& s : norm.slots[static_cast<std::size_t>(u)]) {
            layer_cost[static_cast<std::size_t>(p)] += s.linear_s + s.attention_s;
            fixed[static_cast<std::size_t>(p)] += s.output_s;
        }
    }
    double inv = 0.0, off = 0.0;
    const int total = norm.partition.total_layers();
    for (int p = 0; p < pp; ++p) {
        layer_cost[static_cast<std::size_t>(p)] /= std::max(1, layers[static_cast<std::size_t>(p)]);
        if (layer_cost[static_cast<std::size_t>(p)] <= 0.0)
            return std::nullopt;
        inv += 1.0 / layer_cost[static_cast<std::size_t>(p)];
        off += fixed[static_cast<std::size_t>(p)] / layer_cost[static_cast<std::size_t>(p)];
    }
    const double t = (total + off) / inv;
    const int chunks = pp * vpp;
    std::vector<double> want(static_cast<std::size_t>(chunks));
    for (int p = 0; p < pp; ++p) {
        const double lp =
            std::max(static_cast<double>(vpp), (t - fixed[static_cast<std::size_t>(p)]) /
                                                   layer_cost[static_cast<std::size_t>(p)]);
        for (int v = 0; v < vpp; ++v)
            want[static_cast<std::size_t>(v * pp + p)] = lp / vpp;
    }
    const double sum = std::accumulate(want.begin(), want.end(), 0.0);
    std::vector<int> out(static_cast<std::size_t>(chunks));
    int given = 0;
    std::vector<std::pair<double, int>> rest;
    for (int k = 0; k < chunks; ++k) {
        const double x = want[static_cast<std::size_t>(k)] * total / sum;
        out[static_cast<std::size_t>(k)] = std::max(1, static_cast<int>(std::floor(x)));
        given += out[static_cast<std::size_t>(k)];
        rest.emplace_back(x - std::floor(x), k);
    }
    std::sort(rest.begin(), rest.end(), std::greater<>());
    for (std::size_t i = 0; given < total; i = (i + 1) % rest.size()) {
        ++out[static_cast<std::size_t>(rest[i].second)];
        ++given;
    }
    for (std::size_t i = rest.size(); given > total;) {
        i = i == 0 ? rest.size() - 1 : i - 1;
        auto& x = out[static_cast<std::size_t>(rest[i].second)];
        if (x > 1) {
            --x;
            --given;
        }
    }
    if (out == norm.partition.layers)
        return std::string();
    return fmt::format("{}", fmt::join(out, ","));
}

// The DP replicas whose every (pipeline stage, CP rank) TP group has a rank with a trace, and
// for the others what they lack.
struct replica_coverage {
    std::vector<int> complete;
    std::vector<std::string> lacking; ///< one line per incomplete replica
};

replica_coverage coverage_of(const job_trace& job) {
    const auto& l = job.job_layout;
    replica_coverage out;
    for (int d = 0; d < l.dp(); ++d) {
        std::vector<std::string> gaps;
        int missing = 0;
        for (int p = 0; p < l.pp(); ++p)
            for (int c = 0; c < l.cp(); ++c) {
                bool any = false;
                for (int t = 0; t < l.tp() && !any; ++t)
                    any = job.ranks[static_cast<std::size_t>(l.rank_of({t, c, p, d}))].present;
                if (any)
                    continue;
                ++missing;
                if (gaps.size() < 3) {
                    const int r0 = l.rank_of({0, c, p, d});
                    gaps.push_back(l.tp() > 1 ? fmt::format("pp{} cp{} (ranks {}-{})", p, c, r0,
                                                            r0 + l.tp() - 1)
                                              : fmt::format("pp{} cp{} (rank {})", p, c, r0));
                }
            }
        if (missing == 0) {
            out.complete.push_back(d);
            continue;
        }
        out.lacking.push_back(fmt::format("replica {} has no trace of {} of its {} stage and CP "
                                          "rank groups: {}{}",
                                          d, missing, l.pp() * l.cp(), fmt::join(gaps, ", "),
                                          missing > static_cast<int>(gaps.size()) ? ", ..." : ""));
    }
    return out;
}

} // namespace

std::string_view cause_name(cause c) noexcept {
    switch (c) {
    case cause::pp_packing:
        return "pp_packing";
    case cause::cp_sharding:
        return "cp_sharding";
    case cause::dp_imbalance:
        return "dp_imbalance";
    case cause::stage_partitioning:
        return "stage_partitioning";
    case cause::slow_worker:
        return "slow_worker";
    case cause::communication:
        break;
    }
    return "communication";
}

std::string_view cause_title(cause c) noexcept {
    switch (c) {
    case cause::pp_packing:
        return "PP packing";
    case cause::cp_sharding:
        return "CP sharding";
    case cause::dp_imbalance:
        return "DP imbalance";
    case cause::stage_partitioning:
        return "stage partitioning";
    case cause::slow_worker:
        return "a slow worker";
    case cause::communication:
        break;
    }
    return "communication";
}

double whatif_step_seconds(const measured_step& m, const std::vector<cause>& which,
                           const whatif_options& o) {
    const step_model sm(m);
    std::string note;
    const auto speed = o.even_workers
                           ? std::vector<double>(static_cast<std::size_t>(m.units()), 1.0)
                           : sm.worker_speed(o.noise, note);
    step_runner runner(m);
    return runner.run(evened(m, sm, speed, which));
}

attribution_result attribute(const job_trace& job, const step_index& index,
                             const std::vector<collective_instance>& instances,
                             const attribution_options& options) {
    attribution_result out;
    std::map<std::int64_t, const runtime::sharded_step*> batches;
    for (const auto& b : job.batches)
        batches.emplace(b.step, &b);
    std::map<std::int64_t, std::vector<const collective_instance*>> by_step;
    for (const auto& inst : instances)
        by_step[inst.step].push_back(&inst);
    std::vector<std::string> partitions;
    int current_best = 0; // steps whose evening partition is the current one
    // A partial job: the what-if replays the complete replicas only.
    const auto& l = job.job_layout;
    const auto cov = coverage_of(job);
    std::vector<int> replicas; // empty: all
    std::string no_replica;
    if (cov.complete.empty()) {
        no_replica = fmt::format(
            "no DP replica has a trace of every pipeline stage and CP rank (the what-if replays "
            "whole replicas); {}{}",
            fmt::join(cov.lacking.begin(),
                      cov.lacking.begin() +
                          static_cast<std::ptrdiff_t>(std::min<std::size_t>(2, cov.lacking.size())),
                      "; "),
            cov.lacking.size() > 2 ? fmt::format("; and {} more replicas", cov.lacking.size() - 2)
                                   : std::string());
        out.scope = "no what-if: " + no_replica;
    } else if (static_cast<int>(cov.complete.size()) < l.dp()) {
        replicas = cov.complete;
        out.scope = fmt::format(
            "the what-if replays DP replica{} {} of {}, the ones with a trace of every pipeline "
            "stage and CP rank ({}); left out: {}{}",
            cov.complete.size() > 1 ? "s" : "", runtime::rank_ranges(cov.complete), l.dp(),
            cov.complete.size() > 1 ? "DP imbalance is measured among them only"
                                    : "one replica: DP imbalance cannot be measured",
            cov.lacking.front(),
            cov.lacking.size() > 1 ? fmt::format("; and {} more replicas", cov.lacking.size() - 1)
                                   : std::string());
    }
    out.replicas = replicas.empty() && !cov.complete.empty() ? cov.complete : replicas;
    for (std::int64_t step : job.steps) {
        step_attribution a;
        a.step = step;
        std::string why;
        if (!no_replica.empty()) {
            a.skipped_reason = no_replica;
            out.steps.push_back(std::move(a));
            continue;
        }
        const auto m = measure_step(job, index, step, by_step[step], why, replicas);
        if (!m) {
            a.skipped_reason = why;
            out.steps.push_back(std::move(a));
            continue;
        }
        const step_model sm(*m);
        std::string note;
        const auto b = batches.find(step);
        const auto speed = sm.worker_speed(options.noise, note,
                                           b == batches.end() ? std::vector<std::vector<double>>{}
                                                              : slot_tokens(*m, *b->second));
        step_runner runner(*m);
        a.measured_s = m->measured_step_s;
        a.schedule = m->schedule_name;
        a.replay_s = runner.run(*m);
        const std::vector<cause> all(all_causes.begin(), all_causes.end());
        const auto ideal = evened(*m, sm, speed, all);
        a.ideal_s = runner.run(ideal);
        if (options.keep_ideal) {
            ideal_step is;
            is.step = step;
            is.start_ns = m->start_ns;
            is.plan = runner.plan();
            is.result = runtime::simulate(is.plan);
            out.ideal.push_back(std::move(is));
        }
        for (cause c : all_causes) {
            auto& est = a.causes[static_cast<int>(c)];
            est.what = c;
            est.evened_step_s = runner.run(evened(*m, sm, speed, {c}));
            est.lost_s = a.replay_s - est.evened_step_s;
            // Evening every cause together interacts; the ideal is never slower than the replay
            // or than one cause evened alone, so the lost time is never below one cause's.
            a.ideal_s = std::min(a.ideal_s, est.evened_step_s);
        }
        a.ideal_s = std::min(a.ideal_s, a.replay_s);
        measured_step norm = *m;
        apply_speed(norm, speed, true);
        describe(norm, sm, speed, a, options.noise);
        a.worker_speed = speed;
        a.attributed = true;
        if (options.observe)
            options.observe(*m, a);
        if (const auto part = suggest_partition(norm, sm)) {
            if (part->empty())
                ++current_best;
            else
                partitions.push_back(*part);
        }
        if (m->partition_known)
            out.partition = fmt::format("{}", fmt::join(m->partition.layers, ","));
        out.measured_s += a.measured_s;
        out.replay_s += a.replay_s;
        out.ideal_s += a.ideal_s;
        for (int k = 0; k < cause_count; ++k)
            out.lost_s[static_cast<std::size_t>(k)] += a.causes[static_cast<std::size_t>(k)].lost_s;
        ++out.attributed_steps;
        out.steps.push_back(std::move(a));
    }
    if (out.attributed_steps > 0) {
        int best = 0;
        for (int k = 1; k < cause_count; ++k)
            if (out.lost_s[static_cast<std::size_t>(k)] >
                out.lost_s[static_cast<std::size_t>(best)])
                best = k;
        if (out.lost_s[static_cast<std::size_t>(best)] > 0.0)
            out.dominant = all_causes[static_cast<std::size_t>(best)];
    }
    out.partition_is_closest = current_best > 0 && partitions.empty();
    if (!partitions.empty()) {
        // The suggestion most steps agree on.
        std::map<std::string, int> votes;
        for (const auto& p : partitions)
            ++votes[p];
        out.suggested_partition =
            std::max_element(votes.begin(), votes.end(), [](const auto& x, const auto& y) {
                return x.second < y.second;
            })->first;
    }
    return out;
}

} // namespace wlb::profiler
