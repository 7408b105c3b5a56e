// How long tuner::evaluate takes per candidate: the tuner's inner loop. 64 steps of 7B-128K
// (tp=8,cp=2,pp=4,dp=1, 64 ranks) and 70B-128K (tp=16,cp=4,pp=4,dp=1, 256 ranks) on the
// embedded workload, every candidate of `simulate --compare`, best of 3 wall-clock runs (the
// dev machine is shared). Prints a table; figures go to docs/benchmarks.md.
//
// Usage: bench_evaluate [--steps N] [--data SPEC] [--repeat R]
#include "runtime/model/model_spec.hpp"
#include "tuner/cost/cost_model.hpp"
#include "tuner/cost/hardware.hpp"
#include "tuner/data/document_stream.hpp"
#include "tuner/search/compare_set.hpp"
#include "tuner/search/evaluate.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fmt/format.h>
#include <string>

namespace {

using namespace wlb;
using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t0) {
    return std::chrono::duration<double>(clock_type::now() - t0).count();
}

void bench(const char* label, const char* model, const runtime::layout& l, const std::string& data,
           std::int64_t steps, int repeat) {
    const std::int64_t context = 131072;
    const tuner::cost_model costs(runtime::model_preset(model), tuner::hardware_preset("h100-sxm"),
                                  l);
    tuner::stream_options so;
    so.context_tokens = context;
    auto t0 = clock_type::now();
    auto stream = tuner::open_document_stream(data, so);
    const auto docs = tuner::materialize_documents(
        stream, tuner::tokens_for_steps(steps, context * l.pp() * l.dp()));
    const double read_s = seconds_since(t0);
    fmt::print("{} ({} ranks), {} steps; documents read once: {} in {:.4f} s\n", label,
               l.world_size(), steps, docs.documents.size(), read_s);
    fmt::print("| candidate | seconds per candidate (best of {}) | per step (ms) | simulated mean "
               "step (ms) |\n| --- | ---: | ---: | ---: |\n",
               repeat);
    tuner::packing_knobs knobs;
    knobs.context_tokens = context;
    tuner::sharding_spec chosen;
    for (const auto& c : tuner::comparison_candidates(knobs, chosen, l)) {
        tuner::evaluation_config e;
        e.packing = c.packing;
        e.sharding = c.sharding;
        e.steps = steps;
        double best = 1e30, mean_step = 0.0;
        for (int r = 0; r < repeat; ++r) {
            t0 = clock_type::now();
            const auto result = tuner::evaluate(costs, docs, e);
            best = std::min(best, seconds_since(t0));
            mean_step = result.mean_step_seconds;
        }
        fmt::print("| {} | {:.4f} | {:.3f} | {:.1f} |\n",
                   tuner::describe_candidate(c.packing, c.sharding), best,
                   best / static_cast<double>(steps) * 1e3, mean_step * 1e3);
    }
    fmt::print("\n");
}

} // namespace

int main(int argc, char** argv) {
    std::int64_t steps = 64;
    int repeat = 3;
    std::string data = "default";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--steps"))
            steps = std::stoll(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--data"))
            data = argv[i + 1];
        else if (!std::strcmp(argv[i], "--repeat"))
            repeat = std::max(1, std::atoi(argv[i + 1]));
    }
    fmt::print("tuner::evaluate wall clock (measured) on {}; step times simulated\n\n", data);
    bench("7B-128K tp=8,cp=2,pp=4,dp=1", "7b", runtime::layout(8, 2, 4, 1), data, steps, repeat);
    bench("70B-128K tp=16,cp=4,pp=4,dp=1", "70b", runtime::layout(16, 4, 4, 1), data, steps,
          repeat);
    return 0;
}
