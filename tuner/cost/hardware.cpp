#include "tuner/cost/hardware.hpp"

#include "base/error.hpp"
#include "base/json_file.hpp"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

namespace wlb::tuner {
namespace {

// Attention efficiency by query-chunk length. The shape (low below one 128-token tile, a jump
// between 128 and 256, saturating beyond ~2K) follows WLB-LLM section 5.2's observation on
// H100; the levels are assumptions scaled to FlashAttention-2's published H100 forward rates
// for head dim 128 (~335-430 TFLOP/s at long sequences). Replace with a calibration.
std::vector<rate_point> hopper_attention_fwd() {
    return {{64, 90.0},    {128, 150.0},  {256, 290.0},  {512, 360.0},
            {1024, 400.0}, {2048, 420.0}, {4096, 430.0}, {8192, 435.0}};
}

std::map<std::string, std::string> hopper_sources(const char* memory_source) {
    return {
        {"peak_bf16_tflops", "NVIDIA H100/H200 datasheets: 989 TFLOP/s dense BF16 (SXM)"},
        {"gemm_tflops", "assumed: ~70% of peak for large BF16 GEMMs with cuBLAS; calibrate"},
        {"attention_fwd",
         "assumed levels, shape from WLB-LLM sec. 5.2 (jump between 128 and 256 query "
         "tokens); long-sequence level from FlashAttention-2's H100 figures; calibrate"},
        {"attention_bwd_rate_ratio",
         "assumed: FlashAttention-2 backward runs at ~75% of the forward kernel's rate"},
        {"hbm_gbytes_per_s", memory_source},
        {"nvlink_gbytes_per_s",
         "NVLink 4: 450 GB/s per direction per GPU; ~80% as NCCL bus bandwidth (assumed)"},
        {"nvlink_latency_us", "assumed per ring step inside a node"},
        {"network_gbytes_per_s",
         "one 400 Gb/s NDR InfiniBand NIC per GPU = 50 GB/s; ~80% achieved (assumed)"},
        {"network_latency_us", "assumed per ring step between nodes"},
    };
}

hardware_config h100() {
    hardware_config h;
    h.name = "h100-sxm";
    h.peak_bf16_tflops = 989.0;
    h.gemm_tflops = 700.0;
    h.attention_fwd = hopper_attention_fwd();
    h.attention_bwd_rate_ratio = 0.75;
    h.attention_tile = 128;
    h.hbm_gbytes_per_s = 3350.0;
    h.nvlink_gbytes_per_s = 360.0;
    h.nvlink_latency_us = 5.0;
    h.network_gbytes_per_s = 40.0;
    h.network_latency_us = 10.0;
    h.gpus_per_node = 8;
    h.memory_gbytes = 80.0;
    h.sources = hopper_sources("H100 SXM datasheet: 3.35 TB/s HBM3, 80 GB");
    return h;
}

hardware_config h200() {
    hardware_config h = h100();
    h.name = "h200";
    h.hbm_gbytes_per_s = 4800.0;
    h.memory_gbytes = 141.0;
    h.sources = hopper_sources("H200 SXM datasheet: 4.8 TB/s HBM3e, 141 GB");
    return h;
}

// The dev VM's CPU as `wlbtune run --backend cpu` uses it (one BLAS thread per MPI rank, two
// ranks on its two cores), for the simulator's predictions of real CPU runs. Every number is
// the output of `mpirun -np 2 bench_cpu_runtime --calibrate small float` (docs/benchmarks.md).
hardware_config cpu_dev_vm() {
    hardware_config h;
    h.name = "cpu-dev-vm";
    h.gemm_tflops = 0.1006;
    h.peak_bf16_tflops = h.gemm_tflops;
    h.attention_fwd = {{16, 0.0106}, {64, 0.0217}, {256, 0.0304}, {1024, 0.0339}, {4096, 0.0350}};
    h.attention_bwd_rate_ratio = 1.50;
    h.attention_tile = 64;
    h.hbm_gbytes_per_s = 6.43;
    h.nvlink_gbytes_per_s = 3.66;
    h.nvlink_latency_us = 0.97;
    h.network_gbytes_per_s = h.nvlink_gbytes_per_s;
    h.network_latency_us = h.nvlink_latency_us;
    h.gpus_per_node = 64;
    h.memory_gbytes = 16.0;
    const std::string how = "measured on the dev VM while it was quiet (load average 1.2-1.3), "
                            "2026-11-26: mpirun -np 2 bench_cpu_runtime --calibrate small "
                            "float, both ranks at once, 1 BLAS thread each; the mean of three "
                            "runs within 6% of each other";
    h.sources = {
        {"gemm_tflops", how + "; a layer's forward and backward GEMMs at 2048 tokens"},
        {"peak_bf16_tflops", "set to gemm_tflops (a CPU has no separate bf16 peak here)"},
        {"attention_fwd", how + "; forward kernel over whole documents of 16..4096 tokens"},
        {"attention_bwd_rate_ratio", how + "; backward rate (2.5x forward FLOPs) / forward"},
        {"attention_tile", "the CPU attention kernel's 64-query block (kernels/attention.cpp)"},
        {"hbm_gbytes_per_s", how + "; effective rate of a layer's element-wise kernels against "
                                   "the cost model's 24 + 48 hidden-sized passes per token"},
        {"nvlink_gbytes_per_s", how + "; MPI all-gather of 8 MiB through shared memory"},
        {"nvlink_latency_us", how + "; MPI all-reduce of one value, per ring step"},
        {"network_gbytes_per_s", "as nvlink: a dev VM job has every rank on one host"},
        {"network_latency_us", "as nvlink: a dev VM job has every rank on one host"},
        {"gpus_per_node", "ranks per host: all of a dev VM job"},
        {"memory_gbytes", "assumed host memory per rank"},
    };
    return h;
}

void validate_table(const std::vector<rate_point>& table, const char* field,
                    std::string_view where) {
    for (std::size_t i = 0; i < table.size(); ++i) {
        const auto& p = table[i];
        if (p.query_tokens < 1 || !(p.tflops > 0.0) || !std::isfinite(p.tflops))
            throw input_error(where, fmt::format("hardware field \"{}\"[{}]: query_tokens and "
                                                 "tflops must be positive",
                                                 field, i));
        if (i > 0 && p.query_tokens <= table[i - 1].query_tokens)
            throw input_error(where, fmt::format("hardware field \"{}\"[{}]: query_tokens must "
                                                 "ascend",
                                                 field, i));
    }
}

void validate(const hardware_config& h, std::string_view where) {
    auto positive = [&](double v, const char* field) {
        if (!(v > 0.0) || !std::isfinite(v))
            throw input_error(
                where, fmt::format("hardware field \"{}\" must be positive, got {}", field, v));
    };
    auto non_negative = [&](double v, const char* field) {
        if (!(v >= 0.0) || !std::isfinite(v))
            throw input_error(
                where, fmt::format("hardware field \"{}\" must not be negative, got {}", field, v));
    };
    positive(h.peak_bf16_tflops, "peak_bf16_tflops");
    positive(h.gemm_tflops, "gemm_tflops");
    positive(h.attention_bwd_rate_ratio, "attention_bwd_rate_ratio");
    positive(h.hbm_gbytes_per_s, "hbm_gbytes_per_s");
    positive(h.nvlink_gbytes_per_s, "nvlink_gbytes_per_s");
    positive(h.network_gbytes_per_s, "network_gbytes_per_s");
    positive(h.memory_gbytes, "memory_gbytes");
    non_negative(h.nvlink_latency_us, "nvlink_latency_us");
    non_negative(h.network_latency_us, "network_latency_us");
    non_negative(h.attention_fwd_token_pairs, "attention_fwd_token_pairs");
    non_negative(h.attention_bwd_token_pairs, "attention_bwd_token_pairs");
    non_negative(h.output_layer_tflops, "output_layer_tflops");
    non_negative(h.gemm_bwd_rate_ratio, "gemm_bwd_rate_ratio");
    non_negative(h.output_layer_bwd_rate_ratio, "output_layer_bwd_rate_ratio");
    non_negative(h.lockstep_penalty, "lockstep_penalty");
    if (h.lockstep_penalty > 0.0 && h.lockstep_ranks < 2)
        throw input_error(where, "hardware field \"lockstep_ranks\" must be at least 2 where "
                                 "\"lockstep_penalty\" is set (the ranks it was measured over)");
    if (h.attention_tile < 1)
        throw input_error(where, "hardware field \"attention_tile\" must be at least 1");
    if (h.gpus_per_node < 1)
        throw input_error(where, "hardware field \"gpus_per_node\" must be at least 1");
    if (h.attention_fwd.empty())
        throw input_error(where, "hardware field \"attention_fwd\" needs at least one point");
    validate_table(h.attention_fwd, "attention_fwd", where);
    validate_table(h.attention_bwd, "attention_bwd", where);
    for (const auto& [field, v] : h.spread)
        non_negative(v, ("spread." + field).c_str());
}

/// A rate table from JSON: [{"query_tokens": N, "tflops": X}, ...].
std::vector<rate_point> table_from_json(const nlohmann::json& j, const char* field,
                                        std::string_view where) {
    if (!j.is_array())
        throw input_error(where, fmt::format("hardware field \"{}\" must be an array of "
                                             "{{\"query_tokens\": N, \"tflops\": X}}",
                                             field));
    std::vector<rate_point> out;
    for (std::size_t i = 0; i < j.size(); ++i) {
        const auto& p = j[i];
        if (!p.is_object() || !p.contains("query_tokens") || !p.contains("tflops") ||
            !p["query_tokens"].is_number_integer() || !p["tflops"].is_number() || p.size() != 2)
            throw input_error(where, fmt::format("hardware field \"{}\"[{}] must be "
                                                 "{{\"query_tokens\": N, \"tflops\": X}}",
                                                 field, i));
        out.push_back({p["query_tokens"].get<int>(), p["tflops"].get<double>()});
    }
    return out;
}

nlohmann::json table_json(const std::vector<rate_point>& table) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& p : table)
        out.push_back({{"query_tokens", p.query_tokens}, {"tflops", p.tflops}});
    return out;
}

} // namespace

double hardware_config::attention_fwd_tflops(double query_tokens) const {
    WLB_EXPECTS(!attention_fwd.empty(), "hardware {} has no attention table", name);
    return interpolate_rate(attention_fwd, query_tokens);
}

double hardware_config::attention_bwd_tflops(double query_tokens) const {
    if (attention_bwd.empty())
        return attention_fwd_tflops(query_tokens) * attention_bwd_rate_ratio;
    return interpolate_rate(attention_bwd, query_tokens);
}

double interpolate_rate(const std::vector<rate_point>& t, double query_tokens) {
    WLB_EXPECTS(!t.empty(), "an empty attention rate table");
    if (query_tokens <= t.front().query_tokens)
        return t.front().tflops * std::max(query_tokens, 1.0) / t.front().query_tokens;
    if (query_tokens >= t.back().query_tokens)
        return t.back().tflops;
    auto hi = std::upper_bound(t.begin(), t.end(), query_tokens,
                               [](double q, const rate_point& p) { return q < p.query_tokens; });
    auto lo = hi - 1;
    const double x = std::log2(query_tokens);
    const double x0 = std::log2(lo->query_tokens);
    const double x1 = std::log2(hi->query_tokens);
    return lo->tflops + (hi->tflops - lo->tflops) * (x - x0) / (x1 - x0);
}

std::vector<std::string> hardware_preset_names() {
    return {"h100-sxm", "h200", "cpu-dev-vm"};
}

hardware_config hardware_preset(std::string_view name) {
    if (name == "h100-sxm" || name == "h100")
        return h100();
    if (name == "h200")
        return h200();
    if (name == "cpu-dev-vm")
        return cpu_dev_vm();
    throw input_error(fmt::format(
        "unknown hardware \"{}\" (presets: h100-sxm, h200, cpu-dev-vm; or a path to a JSON "
        "file)",
        name));
}

hardware_config hardware_from_json(const nlohmann::json& j, std::string_view where) {
    if (!j.is_object())
        throw input_error(where, "hardware must be a JSON object");
    static const std::set<std::string, std::less<>> known = {
        "schema",
        "base",
        "name",
        "peak_bf16_tflops",
        "gemm_tflops",
        "attention_fwd",
        "attention_bwd",
        "attention_bwd_rate_ratio",
        "attention_fwd_token_pairs",
        "attention_bwd_token_pairs",
        "attention_tile",
        "output_layer_tflops",
        "gemm_bwd_rate_ratio",
        "output_layer_bwd_rate_ratio",
        "lockstep_penalty",
        "lockstep_ranks",
        "hbm_gbytes_per_s",
        "nvlink_gbytes_per_s",
        "nvlink_latency_us",
        "network_gbytes_per_s",
        "network_latency_us",
        "gpus_per_node",
        "memory_gbytes",
        "sources",
        "spread",
        "provenance",
    };
    for (const auto& [key, _] : j.items())
        if (!known.contains(key))
            throw input_error(where, fmt::format("unknown hardware field \"{}\"", key));
    if (auto it = j.find("schema"); it != j.end() && *it != hardware_schema)
        throw input_error(where, fmt::format("hardware field \"schema\" must be \"{}\", found {}",
                                             hardware_schema, it->dump()));
    hardware_config h;
    // A custom file may start from a preset and override fields: {"base": "h100-sxm", ...}.
    // Without one, a file describes the whole machine and every field the cost model reads is
    // required.
    const auto base = j.find("base");
    if (base != j.end()) {
        if (!base->is_string())
            throw input_error(where, "hardware field \"base\" must be a preset name");
        h = hardware_preset(base->get<std::string>());
    } else {
        for (const char* key :
             {"peak_bf16_tflops", "gemm_tflops", "attention_fwd", "attention_bwd_rate_ratio",
              "attention_tile", "hbm_gbytes_per_s", "nvlink_gbytes_per_s", "nvlink_latency_us",
              "network_gbytes_per_s", "network_latency_us", "gpus_per_node", "memory_gbytes"})
            if (!j.contains(key))
                throw input_error(where, fmt::format("hardware field \"{}\" is missing (a file "
                                                     "without \"base\" describes every field)",
                                                     key));
    }
    auto field = [&](const char* key, auto& out) {
        auto it = j.find(key);
        if (it == j.end())
            return;
        try {
            it->get_to(out);
        } catch (const nlohmann::json::exception&) {
            throw input_error(where, fmt::format("hardware field \"{}\" has the wrong type ({})",
                                                 key, it->type_name()));
        }
    };
    field("name", h.name);
    field("peak_bf16_tflops", h.peak_bf16_tflops);
    field("gemm_tflops", h.gemm_tflops);
    field("attention_bwd_rate_ratio", h.attention_bwd_rate_ratio);
    field("attention_fwd_token_pairs", h.attention_fwd_token_pairs);
    field("attention_bwd_token_pairs", h.attention_bwd_token_pairs);
    field("attention_tile", h.attention_tile);
    field("output_layer_tflops", h.output_layer_tflops);
    field("gemm_bwd_rate_ratio", h.gemm_bwd_rate_ratio);
    field("output_layer_bwd_rate_ratio", h.output_layer_bwd_rate_ratio);
    field("lockstep_penalty", h.lockstep_penalty);
    field("lockstep_ranks", h.lockstep_ranks);
    field("hbm_gbytes_per_s", h.hbm_gbytes_per_s);
    field("nvlink_gbytes_per_s", h.nvlink_gbytes_per_s);
    field("nvlink_latency_us", h.nvlink_latency_us);
    field("network_gbytes_per_s", h.network_gbytes_per_s);
    field("network_latency_us", h.network_latency_us);
    field("gpus_per_node", h.gpus_per_node);
    field("memory_gbytes", h.memory_gbytes);
    field("sources", h.sources);
    field("spread", h.spread);
    if (auto it = j.find("provenance"); it != j.end()) {
        if (!it->is_object())
            throw input_error(where, "hardware field \"provenance\" must be an object");
        h.provenance.clear();
        for (const auto& [key, v] : it->items())
            h.provenance[key] = v.is_string() ? v.get<std::string>() : v.dump();
    }
    if (auto it = j.find("attention_fwd"); it != j.end())
        h.attention_fwd = table_from_json(*it, "attention_fwd", where);
    if (auto it = j.find("attention_bwd"); it != j.end())
        h.attention_bwd = table_from_json(*it, "attention_bwd", where);
    if (h.name.empty())
        h.name = std::string(where);
    validate(h, where);
    return h;
}

hardware_config load_hardware(const std::string& name_or_path) {
    if (name_or_path == "h100") // an alias of h100-sxm, not listed
        return hardware_preset(name_or_path);
    const auto file = preset_or_json_file(name_or_path, "hardware", hardware_preset_names());
    if (!file)
        return hardware_preset(name_or_path);
    return hardware_from_json(*file, name_or_path);
}

nlohmann::json to_json(const hardware_config& h) {
    nlohmann::json j = {{"name", h.name},
                        {"peak_bf16_tflops", h.peak_bf16_tflops},
                        {"gemm_tflops", h.gemm_tflops},
                        {"attention_fwd", table_json(h.attention_fwd)},
                        {"attention_bwd_rate_ratio", h.attention_bwd_rate_ratio},
                        {"attention_tile", h.attention_tile},
                        {"hbm_gbytes_per_s", h.hbm_gbytes_per_s},
                        {"nvlink_gbytes_per_s", h.nvlink_gbytes_per_s},
                        {"nvlink_latency_us", h.nvlink_latency_us},
                        {"network_gbytes_per_s", h.network_gbytes_per_s},
                        {"network_latency_us", h.network_latency_us},
                        {"gpus_per_node", h.gpus_per_node},
                        {"memory_gbytes", h.memory_gbytes},
                        {"sources", h.sources}};
    if (!h.attention_bwd.empty())
        j["attention_bwd"] = table_json(h.attention_bwd);
    if (h.attention_fwd_token_pairs > 0.0)
        j["attention_fwd_token_pairs"] = h.attention_fwd_token_pairs;
    if (h.attention_bwd_token_pairs > 0.0)
        j["attention_bwd_token_pairs"] = h.attention_bwd_token_pairs;
    if (h.output_layer_tflops > 0.0)
        j["output_layer_tflops"] = h.output_layer_tflops;
    if (h.gemm_bwd_rate_ratio > 0.0)
        j["gemm_bwd_rate_ratio"] = h.gemm_bwd_rate_ratio;
    if (h.output_layer_bwd_rate_ratio > 0.0)
        j["output_layer_bwd_rate_ratio"] = h.output_layer_bwd_rate_ratio;
    if (h.lockstep_penalty > 0.0) {
        j["lockstep_penalty"] = h.lockstep_penalty;
        j["lockstep_ranks"] = h.lockstep_ranks;
    }
    if (!h.spread.empty())
        j["spread"] = h.spread;
    if (!h.provenance.empty())
        j["provenance"] = h.provenance;
    return j;
}

} // namespace wlb::tuner
