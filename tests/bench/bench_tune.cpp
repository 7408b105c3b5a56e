// Benchmark of `wlbtune tune` over the paper's eight configurations (design.md section 5) on the
// WLB-LLM-shaped document lengths (../shared/data/wlbllm_doc_lengths.json, stored order,
// documents longer than the context truncated).
//
// Per configuration the tuner runs on the FIRST half of the documents (time budget 30 s, both
// cores); the tuned configuration, the baselines and the paper's settings are then evaluated on
// the SECOND half (out of sample). Prints the tuned configuration, its predicted (simulated)
// speedup over plain + per-seq, over fixed-greedy and over the paper's wlb 2 queues + adaptive,
// in and out of sample, its delay, the ranking's stability and the tuning time (measured).
//
//   bench_tune [--data PATH] [--budget 30s] [--threads N] [--only NAME] [--fixed-micro-batches]
//
// Skips with a message (exit 0) when the data file is absent.
#include "tuner/cost/cost_model.hpp"
#include "tuner/cost/memory_model.hpp"
#include "tuner/data/document_stream.hpp"
#include "tuner/search/evaluate.hpp"
#include "tuner/search/tune.hpp"

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fmt/format.h>
#include <string>
#include <vector>

using namespace wlb;

namespace {

struct paper_config {
    const char* name;
    const char* model;
    std::int64_t context;
    int tp, cp, pp, dp;
};

// WLB-LLM's eight configurations (model, context, TP, CP, PP, DP).
constexpr paper_config configs[] = {
    {"550M-64K", "550m", 65536, 2, 2, 4, 2}, {"550M-128K", "550m", 131072, 2, 4, 4, 1},
    {"7B-64K", "7b", 65536, 4, 2, 4, 1},     {"7B-128K", "7b", 131072, 8, 2, 4, 1},
    {"30B-64K", "30b", 65536, 8, 2, 4, 1},   {"30B-128K", "30b", 131072, 8, 4, 4, 1},
    {"70B-64K", "70b", 65536, 16, 4, 4, 1},  {"70B-128K", "70b", 131072, 16, 4, 4, 1},
};

tuner::document_set slice(const tuner::document_set& all, std::size_t from, std::size_t to) {
    tuner::document_set out;
    out.complete = true;
    out.description = fmt::format("{} [{}, {})", all.description, from, to);
    for (std::size_t i = from; i < to; ++i) {
        auto d = all.documents[i];
        d.id = static_cast<std::int64_t>(out.documents.size());
        out.tokens += d.tokens;
        out.documents.push_back(d);
    }
    return out;
}

} // namespace

int main(int argc, char** argv) {
    std::string data = std::string(WLB_SHARED_DATA_DIR) + "/wlbllm_doc_lengths.json";
    std::string budget = "30s";
    std::string only;
    int threads = 0;
    bool fixed_micro_batches = false;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                fmt::print(stderr, "{} needs a value\n", a);
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--data")
            data = value();
        else if (a == "--budget")
            budget = value();
        else if (a == "--threads")
            threads = std::stoi(value());
        else if (a == "--only")
            only = value();
        else if (a == "--fixed-micro-batches")
            fixed_micro_batches = true;
        else {
            fmt::print(stderr,
                       "usage: bench_tune [--data PATH] [--budget 30s] [--threads N] [--only "
                       "NAME] [--fixed-micro-batches]\n");
            return 2;
        }
    }
    if (!std::filesystem::exists(data)) {
        fmt::print("skipped: {} not found\n", data);
        return 0;
    }

    fmt::print("# bench_tune: tuned on the first half of {}, evaluated on the second half\n", data);
    fmt::print("# all step times SIMULATED (cost model + step simulator); tuning time measured\n");
    fmt::print("# budget {} per configuration, micro-batch knob {}\n\n", budget,
               fixed_micro_batches ? "off (pp)" : "on (pp, 2pp, 4pp)");
    fmt::print("| config | tuned | step s | plain step s in / out | vs plain in / out | vs "
               "fixed-greedy | vs paper in / out | paper vs plain | delay mean / max | sample "
               "steps | tau / regret | evals | tuning s |\n");
    fmt::print(
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | "
        "---: |\n");
    double sum_plain = 0.0, sum_plain_out = 0.0, sum_paper = 0.0, sum_paper_vs_plain = 0.0;
    int n = 0;
    for (const auto& pc : configs) {
        if (!only.empty() && only != pc.name)
            continue;
        const runtime::layout l(pc.tp, pc.cp, pc.pp, pc.dp);
        const tuner::cost_model costs(runtime::model_preset(pc.model),
                                      tuner::hardware_preset("h100-sxm"), l);
        auto stream = tuner::open_document_stream("json:" + data, {.context_tokens = pc.context});
        const auto all = tuner::materialize_documents(stream, 0);
        const auto half = all.documents.size() / 2;
        const auto first = slice(all, 0, half);
        const auto second = slice(all, half, all.documents.size());

        tuner::tune_options o;
        o.time_budget_seconds = tuner::parse_seconds(budget, "--budget");
        o.threads = threads;
        o.vary_micro_batches = !fixed_micro_batches;
        const auto start = std::chrono::steady_clock::now();
        const auto r = tuner::tune(costs, pc.context, first, o);
        const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;

        const tuner::memory_model mem(costs.model(), l, costs.hardware());
        const auto steps = tuner::available_steps(second, r.space.step_tokens());
        auto out_of_sample = [&](const tuner::candidate_result& c) {
            return tuner::evaluate_candidate(costs, second, c.config, steps, o.constraints, mem)
                .mean_step_seconds;
        };
        const double w2 = out_of_sample(r.winner);
        const double plain2 = out_of_sample(r.plain);
        const double paper2 = out_of_sample(r.paper);
        const double vs_plain = r.speedup_over(r.plain);
        const double vs_paper = r.speedup_over(r.paper);
        sum_plain += vs_plain;
        sum_plain_out += plain2 / w2;
        sum_paper += vs_paper;
        sum_paper_vs_plain += r.plain.mean_step_seconds / r.paper.mean_step_seconds;
        ++n;
        fmt::print(
            "| {} | {} | {:.3f} | {:.3f} / {:.3f} | {:.3f}x / {:.3f}x | {:.3f}x ({}) | "
            "{:.3f}x / {:.3f}x | {:.3f}x | {:.2f} / {:.0f} | {} | {:.2f} / {:.2f}% | {} | "
            "{:.1f}{} |\n",
            pc.name, r.winner.name, r.winner.mean_step_seconds, r.plain.mean_step_seconds, plain2,
            vs_plain, plain2 / w2, r.speedup_over(r.fixed_greedy), r.fixed_greedy.name, vs_paper,
            paper2 / w2, r.plain.mean_step_seconds / r.paper.mean_step_seconds, r.winner.delay_mean,
            r.winner.delay_max, r.sample_steps, r.stability.kendall_tau, 100.0 * r.stability.regret,
            r.evaluations, took.count(), r.stopped_by_budget ? " (budget)" : "");
        for (const auto& k : r.knobs)
            fmt::print("|   | knob {}: {} -> {}: {:+.1f}% |  |  |  |  |  |  |  |  |  |  |  |\n",
                       k.knob, k.tuned, k.reverted, 100.0 * (k.slowdown - 1.0));
        std::fflush(stdout);
    }
    if (n > 0)
        fmt::print("\naverage over {} configurations: tuned vs plain {:.3f}x in sample, {:.3f}x "
                   "out of sample; tuned vs paper {:.3f}x; paper vs plain {:.3f}x (all "
                   "simulated)\n",
                   n, sum_plain / n, sum_plain_out / n, sum_paper / n, sum_paper_vs_plain / n);
    return 0;
}
