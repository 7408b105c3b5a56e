// Benchmark of the CP sharding policies on the WLB-LLM-shaped document lengths
// (../shared/data/wlbllm_doc_lengths.json), at the paper's 7B-128K (tp=8,cp=2,pp=4,dp=1) and
// 30B-128K (tp=8,cp=4,pp=4,dp=1) settings.
//
// Packing: a LOCAL sequential fill, not the project's packers (they had not landed on main when
// this was written): documents in stored order fill 128K micro-batches whole (a document that
// does not fit starts the next micro-batch), 4 micro-batches (= pp) per step. This is close to
// the paper's Plain-4D baseline (Megatron packing without cutting documents), the baseline of
// its CP-only figures.
//
// Prints, per policy: the predicted CP imbalance per micro-batch (max over CP ranks / mean of
// predicted attention seconds; mean, worst, and sum of max / sum of mean), the token balance,
// how often each layout was applied, the predicted CP-group time summed over micro-batches
// relative to per-seq, and the measured sharding time per micro-batch.
//
//   bench_sharding [--data PATH] [--hardware h100-sxm]
//
// Skips with a message (exit 0) when the data file is absent.
#include "tuner/cost_model.hpp"
#include "tuner/shard_run.hpp"
#include "tuner/sharding.hpp"

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

/// The local sequential fill described above.
std::vector<runtime::global_batch> pack_sequential(const std::vector<std::int64_t>& lengths,
                                                   std::int64_t context, int micro_batches) {
    std::vector<runtime::global_batch> plan;
    runtime::global_batch step;
    step.replicas.resize(1);
    runtime::micro_batch mb;
    std::int64_t mb_tokens = 0;
    auto close_micro_batch = [&] {
        step.replicas[0].micro_batches.push_back(std::move(mb));
        mb = {};
        mb_tokens = 0;
        if (static_cast<int>(step.replicas[0].micro_batches.size()) == micro_batches) {
            plan.push_back(std::move(step));
            step = {};
            step.step = static_cast<std::int64_t>(plan.size());
            step.replicas.resize(1);
        }
    };
    for (std::size_t i = 0; i < lengths.size(); ++i) {
        const std::int64_t d = std::min(lengths[i], context);
        if (mb_tokens + d > context)
            close_micro_batch();
        mb.docs.push_back({static_cast<std::int64_t>(i), d, step.step});
        mb_tokens += d;
    }
    return plan; // the last, partial step is left out
}

} // namespace

int main(int argc, char** argv) {
    std::string data = std::string(WLB_SHARED_DATA_DIR) + "/wlbllm_doc_lengths.json";
    std::string hardware = "h100-sxm";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--data"))
            data = argv[i + 1];
        else if (!std::strcmp(argv[i], "--hardware"))
            hardware = argv[i + 1];
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

    fmt::print("data: {} ({} documents); {}; packing: LOCAL sequential fill (not wlb); every "
               "imbalance and time below is predicted by the cost model (per layer, forward + "
               "backward), except the measured sharding time\n\n",
               data, lengths.size(), hardware);
    fmt::print("| setting | policy | CP imb. mean | worst | weighted | token imb. mean | worst | "
               "applied (seq/doc/hybrid) | fell back | pred. time vs per-seq | shard time/mb "
               "(us) |\n");
    fmt::print("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |\n");

    const setting settings[] = {{"7B-128K cp=2", "7b", "tp=8,cp=2,pp=4,dp=1"},
                                {"30B-128K cp=4", "30b", "tp=8,cp=4,pp=4,dp=1"}};
    for (const auto& st : settings) {
        const tuner::cost_model costs(tuner::model_preset(st.model),
                                      tuner::hardware_preset(hardware),
                                      runtime::layout::parse(st.layout));
        const auto plan = pack_sequential(lengths, context, costs.layout().pp());
        double per_seq_seconds = 0.0;
        const tuner::sharding_spec specs[] = {
            {tuner::sharding_policy::per_seq, {}},   {tuner::sharding_policy::per_doc, {}},
            {tuner::sharding_policy::adaptive, {}},  {tuner::sharding_policy::hybrid, {}},
            {tuner::sharding_policy::hybrid, 16384},
        };
        for (const auto& spec : specs) {
            const auto sharder = tuner::make_sharder(spec, costs);
            tuner::shard_run_accumulator acc;
            const auto start = std::chrono::steady_clock::now();
            for (const auto& step : plan)
                tuner::shard_step(step, *sharder, costs, acc);
            const double wall =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            const auto s = acc.summary();
            if (spec.policy == tuner::sharding_policy::per_seq)
                per_seq_seconds = s.predicted_seconds;
            std::string name(tuner::to_string(spec.policy));
            if (spec.policy == tuner::sharding_policy::hybrid)
                name += spec.hybrid_threshold_tokens
                            ? fmt::format(" >={}k", *spec.hybrid_threshold_tokens / 1024)
                            : std::string(" auto");
            fmt::print("| {} | {} | {:.4f} | {:.4f} | {:.4f} | {:.4f} | {:.4f} | {}/{}/{} | {} | "
                       "{:.4f}x | {:.0f} |\n",
                       st.name, name, s.mean_attention_imbalance, s.worst_attention_imbalance,
                       s.weighted_attention_imbalance, s.mean_token_imbalance,
                       s.worst_token_imbalance, s.applied[0], s.applied[1], s.applied[3],
                       s.fell_back, per_seq_seconds / s.predicted_seconds,
                       wall / static_cast<double>(std::max<std::int64_t>(1, s.micro_batches)) *
                           1e6);
            std::fflush(stdout);
        }
    }
    return 0;
}
