#include "runtime/calibrate/rate_samples.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace wlb::runtime {

std::string_view to_string(rate_class c) noexcept {
    switch (c) {
    case rate_class::gemm:
        return "gemm";
    case rate_class::elementwise:
        return "elementwise";
    case rate_class::linear:
        return "linear";
    case rate_class::attention:
        return "attention";
    case rate_class::output_layer:
        return "output_layer";
    case rate_class::collective:
        return "collective";
    }
    return "?";
}

std::string_view to_string(collective_op op) noexcept {
    switch (op) {
    case collective_op::all_reduce:
        return "all_reduce";
    case collective_op::all_gather:
        return "all_gather";
    case collective_op::reduce_scatter:
        return "reduce_scatter";
    case collective_op::p2p:
        return "p2p";
    }
    return "?";
}

nlohmann::json to_json(const rate_sample& s) {
    nlohmann::json j = {{"class", to_string(s.what)},
                        {"label", s.label},
                        {"seconds", s.seconds},
                        {"spread", s.spread},
                        {"repeats", s.repeats}};
    if (s.what == rate_class::collective) {
        j["op"] = to_string(s.op);
        j["group_size"] = s.group_size;
        j["bytes"] = s.bytes;
        j["intra_node"] = s.intra_node;
        return j;
    }
    j["pass"] = s.backward ? "bwd" : "fwd";
    j["tokens"] = s.tokens;
    if (s.what == rate_class::attention) {
        auto chunks = nlohmann::json::array();
        for (const auto& c : s.chunks)
            chunks.push_back({c.q_tokens, c.q_offset});
        j["chunks"] = std::move(chunks); // [q_tokens, q_offset]
    }
    return j;
}

nlohmann::json to_json(const rate_samples& s) {
    auto samples = nlohmann::json::array();
    for (const auto& x : s.samples)
        samples.push_back(to_json(x));
    nlohmann::json j = {{"source", s.source}, {"model", to_json(s.model)},
                        {"tp", s.tp},         {"bytes_per_element", s.bytes_per_element},
                        {"ranks", s.ranks},   {"machine", s.machine},
                        {"notes", s.notes},   {"samples", std::move(samples)}};
    if (s.lockstep_ranks > 1) {
        j["lockstep_penalty"] = s.lockstep_penalty;
        j["lockstep_ranks"] = s.lockstep_ranks;
    }
    return j;
}

repeat_summary summarize_repeats(std::vector<double> seconds) {
    if (seconds.empty())
        return {};
    std::sort(seconds.begin(), seconds.end());
    const std::size_t n = seconds.size();
    const double median = n % 2 == 1 ? seconds[n / 2] : 0.5 * (seconds[n / 2 - 1] + seconds[n / 2]);
    const double spread = median > 0.0 ? (seconds.back() - seconds.front()) / median : 0.0;
    return {median, spread};
}

} // namespace wlb::runtime
