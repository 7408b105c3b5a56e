// Single-GPU emulation of a CP=4 group at 128K (runtime/train/gpu_emulation.hpp): the micro-batches
// of a plain (Megatron fixed-length) packing of the WLB-LLM-shaped document lengths
// (../shared/data/wlbllm_doc_lengths.json) are sharded per-seq, per-doc and adaptive by the
// tuner's sharders; every CP rank's layer (attention forward + backward over its real chunks,
// and the GEMMs and element-wise work of its tokens) runs on the one GPU, rank after rank; the
// CP and TP collectives are modelled by the cost model. Printed per policy and rank: measured
// times beside the cost model's prediction (the simulator's per-rank figures,
// tuner/sharding/shard_metrics.hpp), then the CP group's layer time (slowest rank + modelled
// communication) and the speedup over per-seq, measured and predicted.
//
//   bench_cuda_cp_emulation [--model 7b] [--layout tp=8,cp=4,pp=4,dp=1] [--micro-batches N]
//                           [--repeats N] [--attention-only] [--data PATH] [--hardware h100-sxm]
//
// The micro-batches emulated: one synthetic 128K mix (a 64K document among short ones, the case
// per-doc sharding exists for) and, when the data file is present, the N packed micro-batches
// with the largest predicted per-seq CP imbalance. Skips (exit 0) without a CUDA device.
#include "kernels/device_query.hpp"
#include "runtime/train/gpu_emulation.hpp"
#include "tuner/cost/cost_model.hpp"
#include "tuner/packing/pack_run.hpp"
#include "tuner/packing/packer.hpp"
#include "tuner/packing/packing_measures.hpp"
#include "tuner/sharding/make_sharder.hpp"
#include "tuner/sharding/shard_metrics.hpp"
#include "tuner/sharding/sharding.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

using namespace wlb;

namespace {

constexpr std::int64_t context = 131072;

std::vector<runtime::micro_batch> packed_micro_batches(const std::string& data,
                                                       const tuner::cost_model& costs) {
    std::vector<std::int64_t> lengths;
    {
        std::ifstream in(data);
        lengths = nlohmann::json::parse(in).get<std::vector<std::int64_t>>();
    }
    for (auto& l : lengths)
        l = std::min(l, context);
    tuner::packing_config pc;
    pc.policy = tuner::packing_policy::plain;
    pc.context_tokens = context;
    pc.replicas = costs.layout().dp();
    pc.micro_batches = costs.layout().pp();
    auto packer = tuner::make_packer(pc, costs);
    std::size_t next = 0;
    tuner::document_pull pull = [&](std::int64_t step) -> std::optional<runtime::document> {
        if (next >= lengths.size())
            return std::nullopt;
        const auto id = static_cast<std::int64_t>(next);
        return runtime::document{id, lengths[next++], step};
    };
    std::vector<runtime::micro_batch> out;
    tuner::run_measures m(costs, pc);
    tuner::run_packing(*packer, pull, 0, m, [&](const runtime::global_batch& b) {
        for (const auto& r : b.replicas)
            for (const auto& mb : r.micro_batches)
                out.push_back(mb);
    });
    return out;
}

runtime::micro_batch synthetic_mix() {
    runtime::micro_batch mb;
    std::int64_t id = 0, tokens = 0;
    mb.docs.push_back({id++, 65536, 0});
    tokens += 65536;
    const std::int64_t shorts[] = {8192, 4096, 2048, 1024, 16384, 512, 3000, 700};
    for (int i = 0; tokens < context; ++i) {
        const std::int64_t len = std::min(shorts[i % 8], context - tokens);
        mb.docs.push_back({id++, len, 0});
        tokens += len;
    }
    return mb;
}

} // namespace

int main(int argc, char** argv) {
    std::string data = std::string(WLB_SHARED_DATA_DIR) + "/wlbllm_doc_lengths.json";
    std::string model = "7b", layout_spec = "tp=8,cp=4,pp=4,dp=1", hardware = "h100-sxm";
    int picks = 2;
    runtime::emulation_options options;
    for (int i = 1; i < argc; ++i) {
        const bool has = i + 1 < argc;
        if (!std::strcmp(argv[i], "--model") && has)
            model = argv[++i];
        else if (!std::strcmp(argv[i], "--layout") && has)
            layout_spec = argv[++i];
        else if (!std::strcmp(argv[i], "--hardware") && has)
            hardware = argv[++i];
        else if (!std::strcmp(argv[i], "--data") && has)
            data = argv[++i];
        else if (!std::strcmp(argv[i], "--micro-batches") && has)
            picks = std::max(0, std::atoi(argv[++i]));
        else if (!std::strcmp(argv[i], "--repeats") && has)
            options.repeats = std::max(1, std::atoi(argv[++i]));
        else if (!std::strcmp(argv[i], "--attention-only"))
            options.linear = false;
        else {
            std::fprintf(stderr, "usage: bench_cuda_cp_emulation [--model M] [--layout L] "
                                 "[--micro-batches N] [--repeats N] [--attention-only] [--data "
                                 "PATH] [--hardware H]\n");
            return 2;
        }
    }
    const auto devices = kernels::query_devices();
    if (devices.devices.empty()) {
        fmt::print("bench_cuda_cp_emulation: skipped: {}\n", devices.reason);
        return 0;
    }
    const tuner::cost_model costs(runtime::model_preset(model), tuner::hardware_preset(hardware),
                                  runtime::layout::parse(layout_spec));
    const auto& m = costs.model();
    const int tp = costs.layout().tp();
    if (m.heads % tp != 0 || m.kv_heads % tp != 0 || m.ffn % tp != 0) {
        std::fprintf(stderr, "model %s does not split evenly over tp=%d\n", model.c_str(), tp);
        return 2;
    }
    runtime::emulated_layer layer;
    layer.hidden = m.hidden;
    layer.heads = m.heads / tp;
    layer.kv_heads = std::max(1, m.kv_heads / tp);
    layer.head_dim = m.head_dim();
    layer.ffn = m.ffn / tp;
    layer.gated_mlp = m.gated_mlp;
    // Modelled communication per layer, forward + backward: the CP all-gather of K and V and its
    // reduce-scatter of dK and dV, and the TP collectives of the busiest rank.
    options.comm_seconds = [&](const runtime::sharded_micro_batch& s) {
        std::int64_t total = 0, busiest = 0;
        for (const auto& r : s.ranks) {
            std::int64_t t = 0;
            for (const auto& c : r.chunks)
                t += c.q_tokens;
            total += t;
            busiest = std::max(busiest, t);
        }
        return 2.0 * costs.cp_comm_fwd_seconds(total) + 2.0 * costs.tp_comm_fwd_seconds(busiest);
    };

    std::vector<std::pair<std::string, runtime::micro_batch>> batches;
    batches.emplace_back("synthetic 64K + short documents", synthetic_mix());
    if (picks > 0 && std::filesystem::exists(data)) {
        auto mbs = packed_micro_batches(data, costs);
        const auto per_seq = tuner::make_sharder({tuner::sharding_policy::per_seq, {}}, costs);
        std::vector<std::pair<double, std::size_t>> imbalance;
        for (std::size_t i = 0; i < mbs.size(); ++i)
            imbalance.emplace_back(
                tuner::measure_sharding(per_seq->shard(mbs[i]).sharded, costs).attention_imbalance,
                i);
        std::sort(imbalance.rbegin(), imbalance.rend());
        for (int p = 0; p < picks && p < static_cast<int>(imbalance.size()); ++p)
            batches.emplace_back(
                fmt::format("packed micro-batch {} of {} (plain packing; predicted per-seq CP "
                            "imbalance {:.3f}, rank {} by it)",
                            imbalance[static_cast<std::size_t>(p)].second, mbs.size(),
                            imbalance[static_cast<std::size_t>(p)].first, p + 1),
                mbs[imbalance[static_cast<std::size_t>(p)].second]);
    } else if (picks > 0) {
        fmt::print("note: {} is absent; only the synthetic micro-batch is emulated\n\n", data);
    }

    fmt::print("device: {}; model {} on {} (per TP rank: {} heads of {}, {} KV heads, ffn {}); "
               "median of {} runs; times per layer; measured = on this GPU, predicted = cost "
               "model ({}), communication modelled\n\n",
               devices.devices[0].name, model, layout_spec, layer.heads, layer.head_dim,
               layer.kv_heads, layer.ffn, options.repeats, hardware);
    for (const auto& [label, mb] : batches) {
        fmt::print(
            "## {}: {} documents, {} tokens, longest {}\n\n", label, mb.docs.size(), mb.tokens(),
            std::max_element(mb.docs.begin(), mb.docs.end(), [](const auto& a, const auto& b) {
                return a.tokens < b.tokens;
            })->tokens);
        fmt::print("| policy | rank | chunks | tokens | pairs (M) | attn fwd ms | attn bwd ms | "
                   "attn fwd TFLOP/s | linear ms | measured compute ms | predicted attn ms | "
                   "predicted linear ms |\n");
        fmt::print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | "
                   "---: |\n");
        double per_seq_measured = 0, per_seq_predicted = 0;
        std::vector<std::string> summary;
        for (auto policy : {tuner::sharding_policy::per_seq, tuner::sharding_policy::per_doc,
                            tuner::sharding_policy::adaptive}) {
            const auto sharder = tuner::make_sharder({policy, {}}, costs);
            const auto decision = sharder->shard(mb);
            const auto predicted = tuner::measure_sharding(decision.sharded, costs);
            const auto measured = runtime::emulate_cp_group(decision.sharded, layer, options);
            std::string name(tuner::to_string(policy));
            if (policy == tuner::sharding_policy::adaptive)
                name += fmt::format(" ({})", tuner::to_string(decision.applied));
            for (std::size_t r = 0; r < measured.ranks.size(); ++r) {
                const auto& e = measured.ranks[r];
                const auto& p = predicted.ranks[r];
                fmt::print("| {} | {} | {} | {} | {:.1f} | {:.2f} | {:.2f} | {:.1f} | {:.2f} | "
                           "{:.2f} | {:.2f} | {:.2f} |\n",
                           name, r, e.chunks, e.tokens, static_cast<double>(e.causal_pairs) * 1e-6,
                           e.attention_fwd_seconds * 1e3, e.attention_bwd_seconds * 1e3,
                           e.attention_fwd_seconds > 0
                               ? e.attention_fwd_flops / e.attention_fwd_seconds * 1e-12
                               : 0.0,
                           (e.linear_fwd_seconds + e.linear_bwd_seconds) * 1e3,
                           e.compute_seconds() * 1e3, p.attention_seconds * 1e3,
                           p.linear_seconds * 1e3);
            }
            const double measured_layer = measured.layer_seconds();
            const double predicted_layer = predicted.predicted_seconds + measured.comm_seconds;
            if (policy == tuner::sharding_policy::per_seq) {
                per_seq_measured = measured_layer;
                per_seq_predicted = predicted_layer;
            }
            summary.push_back(fmt::format(
                "| {} | {:.2f} | {:.3f} | {:.2f} | {:.2f} | {:.3f}x | {:.3f}x |", name,
                measured_layer * 1e3,
                measured.max_compute_seconds() / std::max(1e-12, measured.mean_compute_seconds()),
                measured.comm_seconds * 1e3, predicted_layer * 1e3,
                per_seq_measured / measured_layer, per_seq_predicted / predicted_layer));
            std::fflush(stdout);
        }
        fmt::print("\n| policy | measured layer ms (slowest rank + modelled comm) | measured "
                   "compute imbalance (max/mean) | modelled comm ms | predicted layer ms | "
                   "speedup vs per-seq, measured | speedup, predicted |\n");
        fmt::print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
        for (const auto& line : summary)
            fmt::print("{}\n", line);
        fmt::print("\n");
    }
    return 0;
}
