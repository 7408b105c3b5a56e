// Acceptance sweep of the what-if attribution (issue "analysis"): simulator traces with causes
// injected, each of the six alone and in pairs, several seeds, a small and a large layout. The
// analysis sees only the trace; the truth comes from the simulator itself: the seconds a cause
// costs = step time with it - step time with the same work evened out (a slow worker or a slow
// link: removed). The base workload is balanced (equal micro-batches, 2 x CP chunks per rank,
// even stages), so every second lost comes from an injection. The test asserts that the
// dominant cause is named in >= 95% of the cases where the truth has one (a pair whose two
// causes cost within 15% of each other has none) and that the seconds lost per injected cause
// are within 10% of the truth (or within 0.5% of the step time, for a cause that costs almost
// nothing) in >= 95% of cases, and prints the table docs/benchmarks.md records (simulated).
#include "profiler/analysis/analysis.hpp"
#include "runtime/sim/sim_trace.hpp"
#include "runtime/sim/simulator.hpp"
#include "support/fake_duration_model.hpp"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <map>
#include <random>
#include <set>

namespace wlb::profiler {
namespace {

using runtime::fault;

struct sweep_layout {
    std::string name;
    std::string spec;
    int micro_batches = 4;
    int layers = 4;
};

// One case: the causes injected and how.
struct injection {
    std::vector<cause> causes;
    std::vector<fault> faults;                   ///< per cause, in `fault_of`
    std::vector<int> fault_of;                   ///< index into causes of each fault
    std::set<std::pair<int, int>> cp_contiguous; ///< (dp, micro-batch) sharded contiguously
};

struct case_result {
    std::string layout;
    std::vector<cause> causes;
    std::map<cause, double> truth; ///< seconds lost, summed over steps
    std::map<cause, double> estimate;
    std::optional<cause> truth_dominant;
    std::optional<cause> named;
    bool ambiguous = false;    ///< the two causes' truths within 15% of each other
    double step_seconds = 0.0; ///< the injected trace's steps, summed
    std::string faults;
};

class sweep {
public:
    sweep(const sweep_layout& sl, unsigned seed)
        : m_sl(sl), m_l(runtime::layout::parse(sl.spec)), m_rng(seed) {
        m_model.layers = sl.layers;
        m_model.linear_seconds_per_token = 1e-6;
        m_model.bwd_ratio = 2.0;
        m_model.collective_seconds_each = 3e-4;
        m_model.p2p_seconds_each = 5e-4;
        m_model.optimizer_seconds_each = 2e-3;
        m_model.layer_params = 1e6;
        std::uniform_int_distribution<int> len(6, 12);
        m_tokens = 1024 * len(m_rng);
        // Attention about as heavy as the linear work of a micro-batch.
        m_model.attention_seconds_per_pair = 2e-6 / static_cast<double>(m_tokens);
    }

    runtime::sharded_step batch(std::int64_t step, const injection& inj) const {
        runtime::sharded_step s;
        s.step = step;
        const int cp = m_l.cp();
        s.replicas.resize(static_cast<std::size_t>(m_l.dp()));
        std::int64_t doc = step * 100000;
        for (int d = 0; d < m_l.dp(); ++d)
            for (int m = 0; m < m_sl.micro_batches; ++m) {
                runtime::sharded_micro_batch mb;
                mb.ranks.resize(static_cast<std::size_t>(cp));
                const std::int64_t n = m_tokens;
                if (inj.cp_contiguous.count({d, m})) {
                    for (int c = 0; c < cp; ++c)
                        mb.ranks[static_cast<std::size_t>(c)].chunks.push_back(
                            {doc, n * c / cp, n * (c + 1) / cp - n * c / cp});
                } else {
                    // 2 x CP chunks, rank i takes chunks i and 2CP-1-i: equal causal pairs.
                    const std::int64_t k = n / (2 * cp);
                    for (int c = 0; c < cp; ++c) {
                        mb.ranks[static_cast<std::size_t>(c)].chunks.push_back({doc, k * c, k});
                        mb.ranks[static_cast<std::size_t>(c)].chunks.push_back(
                            {doc, k * (2 * cp - 1 - c), k});
                    }
                }
                ++doc;
                s.replicas[static_cast<std::size_t>(d)].push_back(std::move(mb));
            }
        return s;
    }

    // Seconds of `steps` steps under `inj`, and the trace when asked.
    double run(const injection& inj, runtime::trace* out) const {
        double total = 0.0;
        std::int64_t offset = 0, flow = 0;
        if (out) {
            out->meta.source = "simulated";
            out->meta.job_layout = m_l;
            out->meta.steps = steps;
            out->meta.tp_replicated = true;
        }
        for (int s = 0; s < steps; ++s) {
            const auto plan = runtime::build_step_plan(m_l, batch(s, inj), m_model);
            const auto r = runtime::simulate(plan, inj.faults);
            total += r.step_seconds;
            if (out) {
                flow = runtime::append_step_trace(*out, plan, r, offset, flow);
                offset += std::llround(r.step_seconds * 1e9);
            }
        }
        return total;
    }

    // The injection with cause `which` evened out (work kept) or removed.
    injection evened(const injection& inj, cause which) const {
        injection out;
        out.causes = inj.causes;
        out.cp_contiguous =
            which == cause::cp_sharding ? std::set<std::pair<int, int>>{} : inj.cp_contiguous;
        const int ci = static_cast<int>(std::find(inj.causes.begin(), inj.causes.end(), which) -
                                        inj.causes.begin());
        std::map<std::pair<int, int>, double> mb_factor; // (dp, m) -> product, of this cause
        for (std::size_t k = 0; k < inj.faults.size(); ++k) {
            const auto& f = inj.faults[k];
            if (inj.fault_of[k] != ci) {
                out.faults.push_back(f);
                out.fault_of.push_back(inj.fault_of[k]);
                continue;
            }
            switch (which) {
            case cause::stage_partitioning: {
                const double even = (f.factor + m_l.pp() - 1) / m_l.pp();
                for (int p = 0; p < m_l.pp(); ++p)
                    out.faults.push_back(
                        runtime::parse_fault(fmt::format("slow-stage={}:{}", p, even)));
                break;
            }
            case cause::pp_packing:
            case cause::dp_imbalance:
                for (int d = 0; d < m_l.dp(); ++d) {
                    if (f.replica >= 0 && f.replica != d)
                        continue;
                    mb_factor[{d, f.micro_batch}] =
                        (mb_factor.count({d, f.micro_batch}) ? mb_factor[{d, f.micro_batch}]
                                                             : 1.0) *
                        f.factor;
                }
                break;
            default: // slow worker, slow link: removed
                break;
            }
        }
        if (!mb_factor.empty()) {
            // The same work spread evenly: over the replica's micro-batches (packing) or over
            // the replicas (DP).
            std::map<std::pair<int, int>, double> even;
            for (int d = 0; d < m_l.dp(); ++d)
                for (int m = 0; m < m_sl.micro_batches; ++m)
                    even[{d, m}] = mb_factor.count({d, m}) ? mb_factor[{d, m}] : 1.0;
            if (which == cause::pp_packing) {
                for (int d = 0; d < m_l.dp(); ++d) {
                    double sum = 0.0;
                    for (int m = 0; m < m_sl.micro_batches; ++m)
                        sum += even[{d, m}];
                    for (int m = 0; m < m_sl.micro_batches; ++m)
                        even[{d, m}] = sum / m_sl.micro_batches;
                }
            } else {
                for (int m = 0; m < m_sl.micro_batches; ++m) {
                    double sum = 0.0;
                    for (int d = 0; d < m_l.dp(); ++d)
                        sum += even[{d, m}];
                    for (int d = 0; d < m_l.dp(); ++d)
                        even[{d, m}] = sum / m_l.dp();
                }
            }
            for (const auto& [key, f] : even)
                if (f != 1.0) {
                    out.faults.push_back(runtime::parse_fault(
                        fmt::format("heavy-mb={}@{}:{}", key.second, key.first, f)));
                    out.fault_of.push_back(ci);
                }
        }
        return out;
    }

    injection inject(const std::vector<cause>& causes, const std::vector<double>& strength) {
        injection inj;
        inj.causes = causes;
        const int M = m_sl.micro_batches;
        auto pick = [&](int n) {
            return std::uniform_int_distribution<int>(0, n - 1)(m_rng);
        };
        for (std::size_t i = 0; i < causes.size(); ++i) {
            const double s = strength[i];
            auto add = [&](const std::string& spec) {
                inj.faults.push_back(runtime::parse_fault(spec));
                inj.fault_of.push_back(static_cast<int>(i));
            };
            switch (causes[i]) {
            case cause::pp_packing:
                add(fmt::format("heavy-mb={}:{}", pick(M), 1.0 + s));
                break;
            case cause::dp_imbalance: {
                const int d = pick(m_l.dp());
                for (int m = 0; m < M; ++m)
                    add(fmt::format("heavy-mb={}@{}:{}", m, d, 1.0 + s));
                break;
            }
            case cause::stage_partitioning:
                add(fmt::format("slow-stage={}:{}", pick(m_l.pp()), 1.0 + s));
                break;
            case cause::slow_worker:
                add(fmt::format("slow-rank={}:{}", pick(m_l.world_size()), 1.0 + s));
                break;
            case cause::communication: {
                // A slow link between CP peers or between pipeline neighbours.
                const int a = pick(m_l.world_size());
                auto c = m_l.coords_of(a);
                auto other = c;
                if (pick(2) == 0 && m_l.cp() > 1)
                    other.cp = (c.cp + 1) % m_l.cp();
                else
                    other.pp = c.pp + 1 < m_l.pp() ? c.pp + 1 : c.pp - 1;
                add(fmt::format("slow-link={}-{}:{}", a, m_l.rank_of(other), 1.0 + 8.0 * s));
                break;
            }
            case cause::cp_sharding: {
                // Contiguous chunks in a share of the micro-batches (strength 0.3-1.0).
                for (int d = 0; d < m_l.dp(); ++d)
                    for (int m = 0; m < M; ++m)
                        if (std::uniform_real_distribution<double>(0, 1)(m_rng) < s + 0.2)
                            inj.cp_contiguous.insert({d, m});
                if (inj.cp_contiguous.empty())
                    inj.cp_contiguous.insert({0, 0});
                break;
            }
            }
        }
        return inj;
    }

    case_result evaluate(const injection& inj) const {
        case_result cr;
        cr.layout = m_sl.name;
        cr.causes = inj.causes;
        runtime::trace t;
        const double injected = run(inj, &t);
        cr.step_seconds = injected;
        for (const auto& f : inj.faults)
            cr.faults += f.describe() + " ";
        if (!inj.cp_contiguous.empty())
            cr.faults += fmt::format("cp-contiguous x{}", inj.cp_contiguous.size());
        for (cause c : inj.causes)
            cr.truth[c] = injected - run(evened(inj, c), nullptr);
        const auto job = ingest_trace(t, {});
        const auto r = analyze_job(job, false);
        EXPECT_EQ(r.attribution.attributed_steps, steps)
            << (r.attribution.steps.empty() ? "" : r.attribution.steps[0].skipped_reason);
        for (cause c : all_causes)
            cr.estimate[c] = r.attribution.lost_s[static_cast<std::size_t>(c)];
        cr.named = r.attribution.dominant;
        double best = -1.0, second = -1.0;
        for (const auto& [c, s] : cr.truth) {
            if (s > best) {
                second = best;
                best = s;
                cr.truth_dominant = c;
            } else if (s > second) {
                second = s;
            }
        }
        cr.ambiguous = second > 0.85 * best;
        return cr;
    }

    static constexpr int steps = 2;

private:
    sweep_layout m_sl;
    runtime::layout m_l;
    mutable std::mt19937 m_rng;
    wlb::test::fake_duration_model m_model;
    std::int64_t m_tokens = 8192;
};

// Within 10% of the truth; a cause that costs almost nothing (under 0.5% of the step time) is
// judged on that scale instead (10% of nothing is nothing a replay can match).
bool within(double estimate, double truth, double step_seconds) {
    return std::abs(estimate - truth) <= std::max(0.10 * std::abs(truth), 0.005 * step_seconds);
}

TEST(AnalysisSweep, DominantCauseAndSecondsLostOnSimulatedTraces) {
    const std::vector<sweep_layout> layouts = {
        {"small tp=2,cp=2,pp=2,dp=2", "tp=2,cp=2,pp=2,dp=2", 4, 4},
        {"large tp=2,cp=4,pp=4,dp=2", "tp=2,cp=4,pp=4,dp=2", 8, 8},
        {"vpp   tp=1,cp=2,pp=2,dp=2,vpp=2", "tp=1,cp=2,pp=2,dp=2,vpp=2", 4, 8},
    };
    const std::vector<cause> causes(all_causes.begin(), all_causes.end());
    std::vector<case_result> results;
    for (const auto& sl : layouts)
        for (unsigned seed = 1; seed <= 8; ++seed) {
            sweep sw(sl, seed);
            std::mt19937 rng(seed * 7919);
            std::uniform_real_distribution<double> strength(0.3, 0.8);
            for (cause c : causes)
                results.push_back(sw.evaluate(sw.inject({c}, {strength(rng)})));
            // Pairs: a strong cause with a weaker one.
            for (std::size_t i = 0; i < causes.size(); ++i) {
                const cause a = causes[i];
                const cause b = causes[(i + seed) % causes.size()];
                if (a == b)
                    continue;
                results.push_back(sw.evaluate(sw.inject({a, b}, {strength(rng), 0.15})));
            }
        }
    // Table: per injected set of causes (single) and pairs together.
    struct row {
        int cases = 0, named = 0, seconds_ok = 0, judged = 0;
        double max_err = 0.0;
        std::vector<double> errs;
    };
    std::map<std::string, row> rows;
    int cases = 0, judged = 0, named = 0, seconds_ok = 0;
    for (const auto& cr : results) {
        const std::string key =
            cr.causes.size() == 1 ? std::string(cause_name(cr.causes[0])) : "pairs";
        auto& rw = rows[cr.layout.substr(0, 5) + " " + key];
        ++rw.cases;
        ++cases;
        bool ok = true;
        for (const auto& [c, truth] : cr.truth) {
            const double err = truth > 0 ? std::abs(cr.estimate.at(c) - truth) / truth : 0.0;
            rw.errs.push_back(err);
            rw.max_err = std::max(rw.max_err, err);
            ok = ok && within(cr.estimate.at(c), truth, cr.step_seconds);
        }
        if (ok) {
            ++rw.seconds_ok;
            ++seconds_ok;
        } else {
            std::string what;
            for (const auto& [c, truth] : cr.truth)
                what += fmt::format(" {}: truth {:.4f} s, estimate {:.4f} s;", cause_name(c), truth,
                                    cr.estimate.at(c));
            std::printf("seconds off by more than 10%%: %s (%s):%s\n", cr.layout.c_str(),
                        cr.faults.c_str(), what.c_str());
        }
        if (!cr.ambiguous) {
            ++rw.judged;
            ++judged;
            if (cr.named == cr.truth_dominant) {
                ++rw.named;
                ++named;
            } else {
                ADD_FAILURE() << cr.layout << ": truth " << cause_name(*cr.truth_dominant)
                              << ", named "
                              << (cr.named ? std::string(cause_name(*cr.named)) : "none");
            }
        }
    }
    std::string table = "| layout | injected | cases | dominant named | seconds within 10% (*) | "
                        "median error | max error |\n| --- | --- | --- | --- | --- | --- | --- |\n";
    for (auto& [key, rw] : rows) {
        std::sort(rw.errs.begin(), rw.errs.end());
        table +=
            fmt::format("| {} | {} | {} | {}/{} | {}/{} | {:.2f}% | {:.2f}% |\n", key.substr(0, 5),
                        key.substr(6), rw.cases, rw.named, rw.judged, rw.seconds_ok, rw.cases,
                        100 * rw.errs[rw.errs.size() / 2], 100 * rw.max_err);
    }
    table += fmt::format("| all | all | {} | {}/{} | {}/{} | | |\n", cases, named, judged,
                         seconds_ok, cases);
    std::printf("%s", table.c_str());
    EXPECT_GE(named, 0.95 * judged) << table;
    EXPECT_GE(seconds_ok, 0.95 * cases) << table;
    EXPECT_GE(judged, 0.8 * cases) << "too many ambiguous cases for the sweep to say much";
}

} // namespace
} // namespace wlb::profiler
