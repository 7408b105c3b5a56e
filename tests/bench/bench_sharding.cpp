// Benchmark of the CP sharding policies on the WLB-LLM-shaped document lengths
// (../shared/data/wlbllm_doc_lengths.json), at the paper's 7B-128K (tp=8,cp=2,pp=4,dp=1) and
// 30B-128K (tp=8,cp=4,pp=4,dp=1) settings, on plans packed by wlb (2 queues, S_max 1.5x) and by
// plain (Megatron fixed-length: the paper's Plain-4D baseline for its CP-only figures).
// Prints, per policy: the predicted CP imbalance per micro-batch (max over CP ranks / mean of
// predicted attention seconds; mean, worst, and sum of max / sum of mean), the token balance,
// how often each layout was applied, the predicted CP-group time summed over micro-batches
// relative to per-seq, and the measured sharding time per micro-batch (the sharder's decision
// alone, not the measuring for the report).
//
//   bench_sharding [--steps N] [--data PATH] [--hardware h100-sxm] [--repeat N]
//
// --repeat N times each policy's sharding N times and reports the best (the predicted figures
// do not change).
//
// Skips with a message (exit 0) when the data file is absent.
#include "tuner/cost/cost_model.hpp"
#include "tuner/packing/pack_run.hpp"
#include "tuner/packing/packer.hpp"
#include "tuner/packing/packing_measures.hpp"
#include "tuner/sharding/make_sharder.hpp"
#include "tuner/sharding/shard_run.hpp"
#include "tuner/sharding/sharding.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

using namespace wlb;

namespace {

struct setting {
    const char* name;
    const char* model;
    const char* layout;
};

std::vector<runtime::global_batch> pack_all(const std::vector<std::int64_t>& lengths,
                                            const tuner::packing_config& config,
                                            const tuner::cost_model& costs, std::int64_t steps) {
    auto p = tuner::make_packer(config, costs);
    std::size_t next = 0;
    tuner::document_pull pull = [&](std::int64_t step) -> std::optional<runtime::document> {
        if (next >= lengths.size())
            return std::nullopt;
        const auto id = static_cast<std::int64_t>(next);
        return runtime::document{id, lengths[next++], step};
    };
    std::vector<runtime::global_batch> out;
    tuner::run_measures m(costs, config);
    tuner::run_packing(*p, pull, steps, m,
                       [&](const runtime::global_batch& b) { out.push_back(b); });
    return out;
}

} // namespace

int main(int argc, char** argv) {
    std::string data = std::string(WLB_SHARED_DATA_DIR) + "/wlbllm_doc_lengths.json";
    std::int64_t steps = 0;
    std::string hardware = "h100-sxm";
    int repeat = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--steps"))
            steps = std::stoll(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--data"))
            data = argv[i + 1];
        else if (!std::strcmp(argv[i], "--hardware"))
            hardware = argv[i + 1];
        else if (!std::strcmp(argv[i], "--repeat"))
            repeat = std::max(1, std::stoi(argv[i + 1]));
    }
    if (!std::filesystem::exists(data)) {
        fmt::print("bench_sharding: skipped: {} is absent (the shared WLB-LLM length sample)\n",
                   data);
        return 0;
    }
    std::vector<std::int64_t> lengths;
    {
        std::ifstream in(data);
        lengths = nlohmann::json::parse(in).get<std::vector<std::int64_t>>();
    }
    constexpr std::int64_t context = 131072;
    for (auto& l : lengths)
        l = std::min(l, context);

    fmt::print("data: {} ({} documents); {}; {} steps; every imbalance and time below is "
               "predicted by the cost model (per layer, forward + backward), except the "
               "measured sharding time (best of {})\n\n",
               data, lengths.size(), hardware, steps > 0 ? fmt::format("{}", steps) : "all",
               repeat);
    fmt::print("| setting | packing | policy | CP imb. mean | worst | weighted | token imb. mean "
               "| worst | applied (seq/doc/hybrid) | fell back | pred. time vs per-seq | shard "
               "time/mb (us) |\n");
    fmt::print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: "
               "|\n");

    const setting settings[] = {{"7B-128K", "7b", "tp=8,cp=2,pp=4,dp=1"},
                                {"30B-128K", "30b", "tp=8,cp=4,pp=4,dp=1"}};
    for (const auto& st : settings) {
        const tuner::cost_model costs(runtime::model_preset(st.model),
                                      tuner::hardware_preset(hardware),
                                      runtime::layout::parse(st.layout));
        for (auto packing : {tuner::packing_policy::wlb, tuner::packing_policy::plain}) {
            tuner::packing_config pc;
            pc.policy = packing;
            pc.context_tokens = context;
            pc.replicas = costs.layout().dp();
            pc.micro_batches = costs.layout().pp();
            if (packing == tuner::packing_policy::wlb) {
                pc.smax_tokens = tuner::default_smax(context);
                pc.thresholds = tuner::default_thresholds(2, context);
            }
            const auto plan = pack_all(lengths, pc, costs, steps);

            double per_seq_seconds = 0.0;
            const tuner::sharding_spec specs[] = {
                {tuner::sharding_policy::per_seq, {}},   {tuner::sharding_policy::per_doc, {}},
                {tuner::sharding_policy::adaptive, {}},  {tuner::sharding_policy::hybrid, {}},
                {tuner::sharding_policy::hybrid, 16384},
            };
            for (const auto& spec : specs) {
                const auto sharder = tuner::make_sharder(spec, costs);
                // Timed: the sharder's decisions alone (adaptive and hybrid predict inside);
                // the best of --repeat runs, as the machine is shared.
                std::vector<tuner::shard_decision> decisions;
                double wall = 0.0;
                for (int rep_run = 0; rep_run < repeat; ++rep_run) {
                    decisions.clear();
                    const auto start = std::chrono::steady_clock::now();
                    for (const auto& step : plan)
                        for (const auto& rep : step.replicas)
                            for (const auto& mb : rep.micro_batches)
                                decisions.push_back(sharder->shard(mb));
                    const double seconds =
                        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
                            .count();
                    wall = rep_run == 0 ? seconds : std::min(wall, seconds);
                }
                // Not timed: measuring each decision for the report.
                tuner::shard_run_accumulator acc;
                std::size_t next = 0;
                for (const auto& step : plan)
                    for (std::size_t r = 0; r < step.replicas.size(); ++r)
                        for (std::size_t m = 0; m < step.replicas[r].micro_batches.size(); ++m)
                            acc.add(tuner::make_shard_record(step.step, static_cast<int>(r),
                                                             static_cast<int>(m),
                                                             step.replicas[r].micro_batches[m],
                                                             std::move(decisions[next++]), costs));
                const auto s = acc.summary();
                if (spec.policy == tuner::sharding_policy::per_seq)
                    per_seq_seconds = s.predicted_seconds;
                std::string name(tuner::to_string(spec.policy));
                if (spec.policy == tuner::sharding_policy::hybrid)
                    name += spec.hybrid_threshold_tokens
                                ? fmt::format(" >={}k", *spec.hybrid_threshold_tokens / 1024)
                                : std::string(" auto");
                fmt::print(
                    "| {} | {} | {} | {:.4f} | {:.4f} | {:.4f} | {:.4f} | {:.4f} | "
                    "{}/{}/{} | {} | {:.4f}x | {:.0f} |\n",
                    st.name, tuner::to_string(packing), name, s.mean_attention_imbalance,
                    s.worst_attention_imbalance, s.weighted_attention_imbalance,
                    s.mean_token_imbalance, s.worst_token_imbalance, s.applied[0], s.applied[1],
                    s.applied[3], s.fell_back, per_seq_seconds / s.predicted_seconds,
                    wall / static_cast<double>(std::max<std::int64_t>(1, s.micro_batches)) * 1e6);
                std::fflush(stdout);
            }
        }
    }
    return 0;
}
