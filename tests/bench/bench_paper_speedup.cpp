// The acceptance table of issue 5: predicted (simulated) step time and speedup of WLB-LLM's
// packing (wlb, 2 outlier queues) with adaptive CP sharding over Megatron's plain packing with
// per-sequence CP sharding, for the paper's eight configurations (design.md section 5) on the
// reference distribution (../shared/data/wlbllm_doc_lengths.json). Also each technique alone
// (wlb + per-seq: packing only; plain + adaptive: sharding only), as the paper's ablation.
// Every candidate of a configuration runs on the same documents (tuner::evaluate), over the
// same number of steps: 85% of what the data holds at that global batch, so that no candidate
// reaches the end of the data. Prints a markdown table; figures go to docs/benchmarks.md.
//
// Usage: bench_paper_speedup [--data SPEC] [--hardware NAME or JSON file] [--steps N] [--only
// 7B-128K]
#include "runtime/model/model_spec.hpp"
#include "runtime/parallel/layout.hpp"
#include "tuner/cost/cost_model.hpp"
#include "tuner/cost/hardware.hpp"
#include "tuner/data/document_stream.hpp"
#include "tuner/search/evaluate.hpp"

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fmt/format.h>
#include <string>

namespace {

using namespace wlb;

struct paper_config {
    const char* name;
    const char* model;
    std::int64_t context;
    int tp, cp, pp, dp;
};

// design.md section 5: (model, context, TP, CP, PP, DP); global batch = PP x DP micro-batches.
constexpr paper_config configs[] = {
    {"550M-64K", "550m", 65536, 2, 2, 4, 2}, {"550M-128K", "550m", 131072, 2, 4, 4, 1},
    {"7B-64K", "7b", 65536, 4, 2, 4, 1},     {"7B-128K", "7b", 131072, 8, 2, 4, 1},
    {"30B-64K", "30b", 65536, 8, 2, 4, 1},   {"30B-128K", "30b", 131072, 8, 4, 4, 1},
    {"70B-64K", "70b", 65536, 16, 4, 4, 1},  {"70B-128K", "70b", 131072, 16, 4, 4, 1},
};

tuner::evaluation run(const tuner::cost_model& costs, const tuner::document_set& docs,
                      const char* packing, tuner::sharding_policy sharding, std::int64_t context,
                      std::int64_t steps) {
    tuner::packing_knobs k;
    k.policy = packing;
    k.context_tokens = context;
    tuner::evaluation_config c;
    c.packing = tuner::make_packing_config(k, costs.layout());
    c.sharding.policy = sharding;
    c.steps = steps;
    auto e = tuner::evaluate(costs, docs, c);
    if (e.documents_exhausted || static_cast<std::int64_t>(e.steps.size()) != steps)
        fmt::print(stderr, "warning: {} ran out of documents\n", e.name);
    return e;
}

// Over a run's steps: the busiest rank's attention share of its compute, the mean bubble, and
// the share of the critical path in TP and CP communication. They explain where a candidate's
// time goes (docs/benchmarks.md).
struct shares {
    double attention = 0.0, bubble = 0.0, comm = 0.0;
};
shares time_shares(const tuner::evaluation& e) {
    shares s;
    for (const auto& st : e.steps) {
        if (!st.slowest.empty() && st.slowest.front().busy_seconds > 0)
            s.attention += st.slowest.front().attention_seconds / st.slowest.front().busy_seconds;
        s.bubble += st.bubble_fraction;
        for (const auto& [name, v] : st.critical_path)
            if (name == "tp" || name == "cp")
                s.comm += v / st.step_seconds;
    }
    const double n = std::max<double>(1.0, static_cast<double>(e.steps.size()));
    return {s.attention / n, s.bubble / n, s.comm / n};
}

} // namespace

int main(int argc, char** argv) {
    std::string data = std::string("json:") + WLB_SHARED_DATA_DIR + "/wlbllm_doc_lengths.json";
    std::string hardware = "h100-sxm";
    std::string only;
    std::int64_t fixed_steps = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--data"))
            data = argv[i + 1];
        else if (!std::strcmp(argv[i], "--hardware"))
            hardware = argv[i + 1];
        else if (!std::strcmp(argv[i], "--steps"))
            fixed_steps = std::stoll(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--only"))
            only = argv[i + 1];
    }
    if (data.rfind("json:", 0) == 0 && !std::filesystem::exists(data.substr(5))) {
        fmt::print("bench_paper_speedup: skipped: {} is absent (the shared WLB-LLM length "
                   "sample)\n",
                   data.substr(5));
        return 0;
    }
    fmt::print("data: {}; hardware {}; wlb = 2 queues at the default thresholds (3C/16, C/2), "
               "S_max 1.5x; micro-batches per replica = pp; documents longer than the context "
               "truncated. Every step time is SIMULATED with the cost model.\n\n",
               data, hardware);
    fmt::print("| config | layout | steps | plain + per-seq (ms) | wlb + adaptive (ms) | speedup "
               "| packing only (wlb + per-seq) | sharding only (plain + adaptive) | plain pack "
               "imb. | wlb pack imb. | wlb delay mean | plain: attn share, bubble, TP+CP comm on "
               "crit. path "
               "| eval s/candidate |\n");
    fmt::print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
               "| ---: |\n");
    double sum64 = 0, sum128 = 0, sum_all = 0;
    int n64 = 0, n128 = 0;
    for (const auto& pc : configs) {
        if (!only.empty() && only != pc.name)
            continue;
        const runtime::layout l(pc.tp, pc.cp, pc.pp, pc.dp);
        const tuner::cost_model costs(runtime::model_preset(pc.model),
                                      tuner::load_hardware(hardware), l);
        tuner::stream_options so;
        so.context_tokens = pc.context;
        auto stream = tuner::open_document_stream(data, so);
        const auto docs = tuner::materialize_documents(stream, 0);
        const std::int64_t step_tokens = pc.context * pc.pp * pc.dp;
        const std::int64_t steps =
            fixed_steps > 0 ? fixed_steps : docs.tokens * 85 / 100 / step_tokens;
        const auto t0 = std::chrono::steady_clock::now();
        const auto base =
            run(costs, docs, "plain", tuner::sharding_policy::per_seq, pc.context, steps);
        const auto both =
            run(costs, docs, "wlb", tuner::sharding_policy::adaptive, pc.context, steps);
        const auto t1 = std::chrono::steady_clock::now();
        const auto pack_only =
            run(costs, docs, "wlb", tuner::sharding_policy::per_seq, pc.context, steps);
        const auto shard_only =
            run(costs, docs, "plain", tuner::sharding_policy::adaptive, pc.context, steps);
        const double speedup = base.mean_step_seconds / both.mean_step_seconds;
        const auto sh = time_shares(base);
        (pc.context == 65536 ? sum64 : sum128) += speedup;
        (pc.context == 65536 ? n64 : n128) += 1;
        sum_all += speedup;
        fmt::print(
            "| {} | {} | {} | {:.1f} | {:.1f} | {:.3f}x | {:.3f}x | {:.3f}x | {:.3f} | "
            "{:.3f} | {:.2f} | {:.0f}%, {:.0f}%, {:.0f}% | {:.2f} |\n",
            pc.name, l.spec(), steps, base.mean_step_seconds * 1e3, both.mean_step_seconds * 1e3,
            speedup, base.mean_step_seconds / pack_only.mean_step_seconds,
            base.mean_step_seconds / shard_only.mean_step_seconds, base.packing.imbalance.mean,
            both.packing.imbalance.mean, both.packing.delay_iterations.mean, 100 * sh.attention,
            100 * sh.bubble, 100 * sh.comm, std::chrono::duration<double>(t1 - t0).count() / 2);
        std::fflush(stdout);
    }
    if (n64 + n128 > 0)
        fmt::print("\nmean speedup (simulated): {:.3f}x over {} configs; 64K {}; 128K {}. Paper "
                   "(measured): 1.23x, 64K 1.15x, 128K 1.30x\n",
                   sum_all / (n64 + n128), n64 + n128,
                   n64 ? fmt::format("{:.3f}x", sum64 / n64) : "-",
                   n128 ? fmt::format("{:.3f}x", sum128 / n128) : "-");
    return 0;
}
