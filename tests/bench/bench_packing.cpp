// Benchmark of the packing policies on the WLB-LLM-shaped document lengths
// (../shared/data/wlbllm_doc_lengths.json) at the paper's 7B / 128K setting: tp=8,cp=2,pp=4,dp=1,
// 4 micro-batches of 128K per step. Prints, per policy, the predicted imbalance degree (mean over
// steps, as the paper's Table 2), per-token delay and the measured packing time per global batch.
//
//   bench_packing [--steps N] [--smax TOKENS] [--thresholds T1,T2,...] [--data PATH]
//                 [--source SPEC] [--repeat R] [--hardware h100-sxm]
//
// --thresholds replaces the wlb rows with one row using these thresholds (for exploring).
// --source reads any document source (docs/data.md: a synthetic heavy tail, ...) instead of the
// JSON lengths file. Rows: plain (Megatron's cut) and plain-whole (documents kept whole), the
// fixed-length and variable-length policies, and wlb 2 queues under delay bounds K = 1, 2, 4, 8
// (packing_config::max_delay_steps): the balance the bound costs.
// Skips with a message (exit 0) when the data file is absent.
#include "tuner/cost/cost_model.hpp"
#include "tuner/data/document_stream.hpp"
#include "tuner/data/open_document_source.hpp"
#include "tuner/packing/pack_run.hpp"
#include "tuner/packing/packer.hpp"
#include "tuner/packing/packing_measures.hpp"

#include <algorithm>
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

struct row {
    std::string name;
    tuner::packing_config config;
};

std::vector<std::int64_t> parse_list(const char* text) {
    std::vector<std::int64_t> out;
    std::string s(text);
    std::size_t pos = 0;
    while (pos <= s.size()) {
        auto comma = s.find(',', pos);
        if (comma == std::string::npos)
            comma = s.size();
        if (comma > pos)
            out.push_back(std::stoll(s.substr(pos, comma - pos)));
        pos = comma + 1;
    }
    return out;
}

std::int64_t quantile(std::vector<std::int64_t> v, double q) {
    std::sort(v.begin(), v.end());
    return v[static_cast<std::size_t>(q * static_cast<double>(v.size() - 1))];
}

} // namespace

int main(int argc, char** argv) {
    std::string data = std::string(WLB_SHARED_DATA_DIR) + "/wlbllm_doc_lengths.json";
    std::int64_t steps = 400;
    std::int64_t smax = 0;
    std::vector<std::int64_t> thresholds;
    int repeat = 3;
    std::string hardware = "h100-sxm";
    std::string source;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--steps"))
            steps = std::stoll(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--smax"))
            smax = std::stoll(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--thresholds"))
            thresholds = parse_list(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--data"))
            data = argv[i + 1];
        else if (!std::strcmp(argv[i], "--repeat"))
            repeat = std::stoi(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--hardware"))
            hardware = argv[i + 1];
        else if (!std::strcmp(argv[i], "--source"))
            source = argv[i + 1];
    }
    constexpr std::int64_t context = 131072;
    std::vector<std::int64_t> lengths;
    if (!source.empty()) {
        tuner::stream_options so;
        so.context_tokens = context;
        tuner::document_stream stream(tuner::open_document_source(source), so);
        while (const auto d = stream.next(0))
            lengths.push_back(d->tokens);
        data = source;
    } else if (!std::filesystem::exists(data)) {
        fmt::print("bench_packing: skipped: {} is absent (the shared WLB-LLM length sample)\n",
                   data);
        return 0;
    }
    if (source.empty()) {
        std::ifstream in(data);
        lengths = nlohmann::json::parse(in).get<std::vector<std::int64_t>>();
    }
    for (auto& l : lengths)
        l = std::min(l, context); // the stream's truncate policy (none is longer in this sample)

    const tuner::cost_model costs(runtime::model_preset("7b"), tuner::hardware_preset(hardware),
                                  runtime::layout::parse("tp=8,cp=2,pp=4,dp=1"));
    tuner::packing_config base;
    base.context_tokens = context;
    base.replicas = 1;
    base.micro_batches = 4;

    fmt::print("data: {} ({} documents, p50 {} p90 {} p99 {} p99.9 {} max {})\n", data,
               lengths.size(), quantile(lengths, 0.5), quantile(lengths, 0.9),
               quantile(lengths, 0.99), quantile(lengths, 0.999), quantile(lengths, 1.0));
    fmt::print("7B / 128K, tp=8,cp=2,pp=4,dp=1, 4 micro-batches per step, {} steps, stored order, "
               "{}; imbalance is predicted by the cost model\n\n",
               steps, hardware);

    std::vector<row> rows;
    auto add = [&](std::string name, tuner::packing_policy p, auto&& tweak) {
        row r{std::move(name), base};
        r.config.policy = p;
        tweak(r.config);
        rows.push_back(std::move(r));
    };
    auto none = [](tuner::packing_config&) {
    };
    const std::int64_t default_smax = smax > 0 ? smax : tuner::default_smax(context);
    add("plain", tuner::packing_policy::plain, none);
    add("plain-whole", tuner::packing_policy::plain_whole, none);
    for (int w : {1, 2, 4, 8})
        add(fmt::format("fixed-greedy W={}", w), tuner::packing_policy::fixed_greedy,
            [w](tuner::packing_config& c) { c.window = w; });
    add("ffd", tuner::packing_policy::ffd, none);
    add("varlen", tuner::packing_policy::varlen,
        [&](tuner::packing_config& c) { c.smax_tokens = default_smax; });
    std::vector<std::vector<std::int64_t>> queue_sets;
    if (!thresholds.empty())
        queue_sets = {thresholds};
    else
        queue_sets = {tuner::default_thresholds(1, context), tuner::default_thresholds(2, context),
                      tuner::default_thresholds(3, context)};
    for (const auto& t : queue_sets) {
        std::string names;
        for (auto x : t)
            names += fmt::format("{}{}k", names.empty() ? "" : ",", x / 1024);
        add(fmt::format("wlb {} queue{} ({})", t.size(), t.size() > 1 ? "s" : "", names),
            tuner::packing_policy::wlb, [&](tuner::packing_config& c) {
                c.smax_tokens = default_smax;
                c.thresholds = t;
            });
    }

    if (thresholds.empty())
        for (const std::int64_t k : {1, 2, 4, 8})
            add(fmt::format("wlb 2 queues, max delay {}", k), tuner::packing_policy::wlb,
                [&](tuner::packing_config& c) {
                    c.smax_tokens = default_smax;
                    c.thresholds = tuner::default_thresholds(2, context);
                    c.max_delay_steps = k;
                });

    fmt::print(
        "| policy | imbalance mean | p99 | max | attention imb. mean | delay mean | p50 | p99 "
        "| max | waiting/step | tokens/step | max mb tokens | pack time/step (us) |\n");
    fmt::print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
               "| ---: |\n");
    for (const auto& r : rows) {
        tuner::run_summary s;
        double best_pack = 1e30;
        for (int k = 0; k < repeat; ++k) {
            auto p = tuner::make_packer(r.config, costs);
            std::size_t next = 0;
            tuner::document_pull pull = [&](std::int64_t step) -> std::optional<runtime::document> {
                if (next >= lengths.size())
                    return std::nullopt;
                const auto id = static_cast<std::int64_t>(next);
                return runtime::document{id, lengths[next++], step};
            };
            tuner::run_measures m(costs, r.config);
            tuner::run_packing(*p, pull, steps, m);
            s = m.summary();
            best_pack = std::min(best_pack, s.mean_pack_seconds);
        }
        fmt::print("| {} | {:.3f} | {:.3f} | {:.3f} | {:.3f} | {:.3f} | {:.0f} | {:.0f} | {:.0f} | "
                   "{:.1f} | {:.0f} | {} | {:.1f} |\n",
                   r.name, s.imbalance.mean, s.imbalance.p99, s.imbalance.max,
                   s.attention_imbalance.mean, s.delay_iterations.mean, s.delay_iterations.p50,
                   s.delay_iterations.p99, s.delay_iterations.max, s.mean_waiting_documents,
                   s.mean_step_tokens, s.max_micro_batch_tokens, best_pack * 1e6);
        std::fflush(stdout);
    }
    return 0;
}
