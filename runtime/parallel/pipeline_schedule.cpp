#include "runtime/parallel/pipeline_schedule.hpp"

#include "base/error.hpp"

#include <algorithm>
#include <charconv>
#include <fmt/format.h>
#include <numeric>

namespace wlb::runtime {
namespace {

int parse_positive(std::string_view text, std::string_view what) {
    int v = 0;
    const auto* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, v);
    if (ec != std::errc{} || ptr != end || v < 1)
        throw input_error(
            fmt::format("{}: \"{}\" is not a positive integer", what, std::string(text)));
    return v;
}

} // namespace

std::string schedule_options::describe(int pp, int vpp) const {
    if (vpp <= 1)
        return "1f1b";
    const int n = micro_batch_group > 0 ? micro_batch_group : pp;
    if (n == pp)
        return fmt::format("interleaved 1f1b (vpp={}, {} consecutive micro-batches)", vpp, n);
    return fmt::format("llama3 interleaved (vpp={}, {} consecutive micro-batches)", vpp, n);
}

schedule_options parse_schedule(std::string_view text, int vpp) {
    schedule_options o;
    if (text == "auto" || text == "interleaved")
        return o;
    if (text == "1f1b") {
        if (vpp > 1)
            throw input_error(fmt::format(
                "schedule \"1f1b\" runs one model chunk per rank but the layout has vpp={}; use "
                "\"interleaved\" or \"llama3:N\", or drop vpp",
                vpp));
        return o;
    }
    if (text.starts_with("llama3:")) {
        o.micro_batch_group = parse_positive(text.substr(7), "schedule llama3:N");
        return o;
    }
    throw input_error(fmt::format(
        "unknown schedule \"{}\" (expected 1f1b, interleaved, llama3:N or auto)", text));
}

std::vector<pipeline_slot> pipeline_order(int pp, int vpp, int micro_batches, int pp_rank,
                                          const schedule_options& options) {
    WLB_EXPECTS(pp >= 1 && vpp >= 1 && pp_rank >= 0 && pp_rank < pp, "pp={} vpp={} rank={}", pp,
                vpp, pp_rank);
    if (micro_batches < 1)
        throw input_error(
            fmt::format("a pipeline needs at least one micro-batch, got {}", micro_batches));
    const int m = micro_batches;
    std::vector<pipeline_slot> order;
    order.reserve(static_cast<std::size_t>(2 * m * vpp));
    if (vpp == 1) {
        const int warmup = std::min(pp - pp_rank - 1, m);
        for (int i = 0; i < warmup; ++i)
            order.push_back({pass::fwd, i, 0});
        for (int i = 0; i < m - warmup; ++i) {
            order.push_back({pass::fwd, warmup + i, 0});
            order.push_back({pass::bwd, i, 0});
        }
        for (int i = m - warmup; i < m; ++i)
            order.push_back({pass::bwd, i, 0});
        return order;
    }
    const int n = options.micro_batch_group > 0 ? options.micro_batch_group : pp;
    if (n < pp)
        throw input_error(fmt::format(
            "interleaved schedule: {} consecutive micro-batches per model chunk is fewer than "
            "the {} pipeline stages (the first stage would wait for its own output)",
            n, pp));
    if (m % n != 0)
        throw input_error(fmt::format(
            "interleaved schedule: {} micro-batches is not a multiple of the group of {} "
            "consecutive micro-batches per model chunk",
            m, n));
    const int total = m * vpp;
    auto slot = [&](int k, pass ph) {
        const int in_group = k % (n * vpp);
        int chunk = in_group / n;
        if (ph == pass::bwd)
            chunk = vpp - 1 - chunk;
        const int mb = (k / (n * vpp)) * n + k % n;
        return pipeline_slot{ph, mb, chunk};
    };
    const int warmup = std::min((pp - pp_rank - 1) * 2 + (vpp - 1) * n, total);
    for (int k = 0; k < warmup; ++k)
        order.push_back(slot(k, pass::fwd));
    for (int k = 0; k < total - warmup; ++k) {
        order.push_back(slot(k + warmup, pass::fwd));
        order.push_back(slot(k, pass::bwd));
    }
    for (int k = total - warmup; k < total; ++k)
        order.push_back(slot(k, pass::bwd));
    return order;
}

int stage_partition::total_layers() const noexcept {
    return std::accumulate(layers.begin(), layers.end(), 0);
}

std::string stage_partition::describe() const {
    std::string s;
    for (std::size_t i = 0; i < layers.size(); ++i)
        s += fmt::format("{}{}", i ? "," : "", layers[i]);
    return s;
}

stage_partition make_stage_partition(std::string_view policy, int layers, int chunks) {
    WLB_EXPECTS(chunks >= 1, "chunks={}", chunks);
    if (layers < chunks)
        throw input_error(fmt::format(
            "stage partition: {} layers cannot fill {} model chunks (pp * vpp) with at least "
            "one layer each",
            layers, chunks));
    stage_partition p;
    p.layers.assign(static_cast<std::size_t>(chunks), 0);
    auto spread = [&](int total, int first, int last) {
        // `total` layers over chunks [first, last), the remainder one extra on the middle ones.
        const int count = last - first;
        const int base = total / count;
        const int extra = total % count;
        const int skip = (count - extra) / 2; // centre the extra layers
        for (int i = 0; i < count; ++i)
            p.layers[static_cast<std::size_t>(first + i)] =
                base + (i >= skip && i < skip + extra ? 1 : 0);
    };
    if (policy == "even") {
        spread(layers, 0, chunks);
        return p;
    }
    if (policy == "llama3") {
        if (chunks < 3) {
            spread(layers, 0, chunks);
            return p;
        }
        // Two layers' room for the embedding and the output layer: every chunk gets
        // b = (layers + 2) / chunks, the first and last one fewer.
        const int b = (layers + 2) / chunks;
        if (b < 2)
            throw input_error(fmt::format(
                "stage partition llama3: {} layers over {} chunks leaves the first and last "
                "chunk empty",
                layers, chunks));
        p.layers.front() = b - 1;
        p.layers.back() = b - 1;
        spread(layers - 2 * (b - 1), 1, chunks - 1);
        return p;
    }
    // An explicit list.
    std::vector<int> counts;
    std::size_t begin = 0;
    for (std::size_t i = 0; i <= policy.size(); ++i) {
        if (i == policy.size() || policy[i] == ',') {
            counts.push_back(
                parse_positive(policy.substr(begin, i - begin), "stage partition entry"));
            begin = i + 1;
        }
    }
    if (static_cast<int>(counts.size()) != chunks)
        throw input_error(fmt::format(
            "stage partition \"{}\" has {} entries; the layout has {} model chunks (pp * vpp); "
            "expected even, llama3 or {} comma-separated layer counts",
            policy, counts.size(), chunks, chunks));
    const int sum = std::accumulate(counts.begin(), counts.end(), 0);
    if (sum != layers)
        throw input_error(fmt::format("stage partition \"{}\" sums to {} layers; the model has {}",
                                      policy, sum, layers));
    p.layers = std::move(counts);
    return p;
}

} // namespace wlb::runtime
