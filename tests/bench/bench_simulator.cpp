// One simulated step (plan build + simulation) at 256 ranks (70B-128K: tp=16,cp=4,pp=4,dp=1)
// and at 4,096 ranks (tp=8,cp=8,pp=16,dp=4), with the cost model. Prints a table; figures go
// to docs/benchmarks.md. Targets (issue 5): < 5 ms and < 100 ms per simulated step.
#include "runtime/model/model_spec.hpp"
#include "runtime/plan/step_plan.hpp"
#include "runtime/sim/simulator.hpp"
#include "tuner/cost/cost_model.hpp"
#include "tuner/cost/hardware.hpp"
#include "tuner/cost/plan_durations.hpp"

#include <algorithm>
#include <chrono>
#include <fmt/format.h>
#include <random>

namespace {

using namespace wlb;

// Per-sequence sharding by hand: 2*cp equal pieces of the packed sequence, rank i takes
// pieces i and 2cp-1-i, cut across document boundaries.
runtime::sharded_micro_batch per_sequence(const std::vector<std::int64_t>& docs, int cp) {
    std::int64_t total = 0;
    for (auto d : docs)
        total += d;
    runtime::sharded_micro_batch mb;
    mb.ranks.resize(static_cast<std::size_t>(cp));
    const int pieces = 2 * cp;
    for (int k = 0; k < pieces; ++k) {
        const std::int64_t a = total * k / pieces, b = total * (k + 1) / pieces;
        const int r = k < cp ? k : pieces - 1 - k;
        std::int64_t start = 0;
        for (std::size_t i = 0; i < docs.size(); ++i) {
            const std::int64_t lo = std::max(a, start), hi = std::min(b, start + docs[i]);
            if (hi > lo)
                mb.ranks[static_cast<std::size_t>(r)].chunks.push_back(
                    {static_cast<std::int64_t>(i), lo - start, hi - lo});
            start += docs[i];
        }
    }
    return mb;
}

void bench(const char* label, const char* model, const runtime::layout& l, std::int64_t context) {
    tuner::cost_model costs(runtime::model_preset(model), tuner::hardware_preset("h100-sxm"), l);
    tuner::cost_duration_model durations(costs);
    std::mt19937_64 rng(42);
    runtime::sharded_step step;
    for (int d = 0; d < l.dp(); ++d) {
        auto& rep = step.replicas.emplace_back();
        for (int m = 0; m < l.pp(); ++m) { // global batch = PP x DP micro-batches
            std::vector<std::int64_t> docs;
            std::int64_t left = context;
            while (left > 0) {
                const std::int64_t d_len = std::min<std::int64_t>(left, 256 << (rng() % 10));
                docs.push_back(d_len);
                left -= d_len;
            }
            rep.push_back(per_sequence(docs, l.cp()));
        }
    }
    using clock = std::chrono::steady_clock;
    const int reps = 50;
    double build_ms = 1e30, sim_ms = 1e30, step_s = 0.0;
    std::size_t ops = 0;
    for (int i = 0; i < reps; ++i) {
        const auto t0 = clock::now();
        auto plan = runtime::build_step_plan(l, step, durations);
        const auto t1 = clock::now();
        auto r = runtime::simulate(plan);
        const auto t2 = clock::now();
        build_ms = std::min(build_ms, std::chrono::duration<double, std::milli>(t1 - t0).count());
        sim_ms = std::min(sim_ms, std::chrono::duration<double, std::milli>(t2 - t1).count());
        step_s = r.step_seconds;
        ops = plan.ops.size();
    }
    fmt::print("{:<34} {:>6} {:>8} {:>10.3f} {:>10.3f} {:>10.3f} {:>12.1f}\n", label,
               l.world_size(), ops, build_ms, sim_ms, build_ms + sim_ms, step_s * 1e3);
}

} // namespace

int main() {
    fmt::print("one simulated step, best of 50 (ms); step time is simulated\n");
    fmt::print("{:<34} {:>6} {:>8} {:>10} {:>10} {:>10} {:>12}\n", "layout", "ranks", "ops",
               "build ms", "sim ms", "total ms", "step (sim ms)");
    bench("70b 128k tp=16,cp=4,pp=4,dp=1", "70b", wlb::runtime::layout(16, 4, 4, 1), 131072);
    bench("70b 128k tp=8,cp=8,pp=16,dp=4", "70b", wlb::runtime::layout(8, 8, 16, 4), 131072);
    return 0;
}
