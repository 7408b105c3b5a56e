#include "runtime/calibrate/trace_samples.hpp"

#include "base/error.hpp"
#include "base/json_file.hpp"
#include "runtime/parallel/layout.hpp"
#include "runtime/trace/trace.hpp"

#include <algorithm>
#include <filesystem>
#include <fmt/format.h>
#include <map>
#include <nlohmann/json.hpp>
#include <tuple>

namespace wlb::runtime {
namespace {

/// What the sums of one (step, micro-batch, pass) of a rank hold.
struct cell {
    double gemm = 0, elementwise = 0, linear = 0, attention = 0, output_layer = 0;
    int layers = 0; ///< attention operations: one per layer
    bool has_output = false;
};

enum class work { none, gemm, elementwise, linear, attention, output_layer };

work work_of(std::string_view name) {
    if (name.size() < 4)
        return work::none;
    const auto base = name.substr(0, name.size() - 4);
    if (base == "qkv proj" || base == "out proj" || base == "mlp")
        return work::gemm;
    if (base == "attn norm" || base == "mlp norm" || base == "residual" || base == "kv layout")
        return work::elementwise;
    if (base == "linear")
        return work::linear;
    if (base == "attention")
        return work::attention;
    if (base == "output layer")
        return work::output_layer;
    return work::none;
}

std::optional<collective_op> collective_of(std::string_view name) {
    if (name.find("all-gather") != std::string_view::npos)
        return collective_op::all_gather;
    if (name.find("reduce-scatter") != std::string_view::npos)
        return collective_op::reduce_scatter;
    if (name.find("all-reduce") != std::string_view::npos)
        return collective_op::all_reduce;
    return std::nullopt;
}

std::optional<axis> axis_of(lane l) {
    switch (l) {
    case lane::tp:
        return axis::tp;
    case lane::cp:
        return axis::cp;
    case lane::dp:
        return axis::dp;
    default:
        return std::nullopt;
    }
}

struct instance_key {
    std::int64_t step;
    lane where;
    std::string name;
    int occurrence;
    int group;
    auto operator<=>(const instance_key&) const = default;
};

struct instance {
    int members = 0;
    int group_size = 0;
    double min_seconds = 0;
    double bytes = 0;
    collective_op op = collective_op::all_reduce;
};

} // namespace

rate_samples samples_from_trace(const std::string& dir, const trace_sample_options& options) {
    const trace_reader reader(dir);
    const auto& meta = reader.meta();
    if (meta.batches.empty())
        throw input_error(dir, "the trace records no batches (its manifest names no "
                               "batches.json): calibrate --from-trace needs a run or simulation "
                               "of wlbtune that recorded its steps' batches");
    const auto batches = reader.read_batches();
    std::map<std::int64_t, const sharded_step*> by_step;
    for (const auto& b : batches)
        by_step[b.step] = &b;
    const auto manifest = read_json_file((std::filesystem::path(dir) / "manifest.json").string());

    rate_samples out;
    out.source = "trace " + dir;
    out.ranks = 1;
    out.tp = meta.job_layout.tp();
    out.machine = fmt::format("the machine that ran the trace ({})", meta.source);
    if (options.model) {
        out.model = *options.model;
    } else if (auto it = manifest.find("model"); it != manifest.end()) {
        out.model = model_from_json(*it, dir + "/manifest.json: model");
    } else {
        throw input_error(dir, "the trace's manifest does not say which model ran (no \"model\"; "
                               "traces of wlbtune run from before calibrate lack it): give "
                               "--model");
    }
    out.bytes_per_element = manifest.value("bytes_per_element", meta.source == "simulated" ? 2 : 4);

    const bool measured = meta.source != "simulated";
    std::int64_t first_step = 0;
    if (measured && !options.keep_warmup && by_step.size() > 1) {
        first_step = by_step.begin()->first + 1;
        out.notes.push_back(
            fmt::format("step {} left out: the warm-up of a measured run", by_step.begin()->first));
    }
    const auto& l = meta.job_layout;
    std::map<instance_key, instance> instances;
    std::int64_t mismatched = 0;
    for (const int rank : reader.ranks()) {
        const auto c = l.coords_of(rank);
        // (step, micro-batch, backward) -> sums
        std::map<std::tuple<std::int64_t, int, bool>, cell> cells;
        std::map<std::tuple<std::int64_t, lane, std::string>, int> seen;
        reader.read_rank(rank, [&](trace_event&& e) {
            if (e.step < first_step)
                return;
            if (e.kind == event_kind::collective && measured) {
                const auto op = collective_of(e.name);
                const auto a = axis_of(e.where);
                if (!op || !a || !e.bytes || *e.bytes <= 0)
                    return;
                const int k = seen[{e.step, e.where, e.name}]++;
                const int n = l.degree(*a);
                if (n < 2)
                    return;
                auto& in = instances[{e.step, e.where, e.name, k, l.group_index(rank, *a)}];
                const double s = static_cast<double>(e.dur_ns) * 1e-9;
                in.min_seconds = in.members == 0 ? s : std::min(in.min_seconds, s);
                ++in.members;
                in.group_size = n;
                in.op = *op;
                // The executors record what this rank contributes: an all-gather's block.
                in.bytes = *op == collective_op::all_gather ? *e.bytes * n : *e.bytes;
                return;
            }
            if (e.where != lane::compute || e.kind != event_kind::compute || e.micro_batch < 0)
                return;
            const auto w = work_of(e.name);
            if (w == work::none)
                return;
            auto& x = cells[{e.step, e.micro_batch, e.ph == phase::bwd}];
            const double s = static_cast<double>(e.dur_ns) * 1e-9;
            switch (w) {
            case work::gemm:
                x.gemm += s;
                break;
            case work::elementwise:
                x.elementwise += s;
                break;
            case work::linear:
                x.linear += s;
                break;
            case work::attention:
                x.attention += s;
                ++x.layers;
                break;
            case work::output_layer:
                x.output_layer += s;
                x.has_output = true;
                break;
            case work::none:
                break;
            }
        });
        for (const auto& [key, x] : cells) {
            const auto [step, mb, bwd] = key;
            const auto it = by_step.find(step);
            if (it == by_step.end()) {
                ++mismatched;
                continue;
            }
            const auto& reps = it->second->replicas;
            const auto dp = static_cast<std::size_t>(c.dp), cp = static_cast<std::size_t>(c.cp);
            if (dp >= reps.size() || static_cast<std::size_t>(mb) >= reps[dp].size() ||
                cp >= reps[dp][static_cast<std::size_t>(mb)].ranks.size()) {
                ++mismatched;
                continue;
            }
            const auto& chunks = reps[dp][static_cast<std::size_t>(mb)].ranks[cp].chunks;
            std::int64_t tokens = 0;
            for (const auto& ch : chunks)
                tokens += ch.q_tokens;
            const std::string label =
                fmt::format("step {} rank {} mb {} {}", step, rank, mb, bwd ? "bwd" : "fwd");
            // A copy: clang before 16 cannot capture a structured binding in a lambda.
            const bool backward = bwd;
            auto add = [&](rate_class what, double seconds) {
                if (seconds <= 0.0)
                    return;
                rate_sample s;
                s.what = what;
                s.backward = backward;
                s.label = label;
                s.seconds = seconds;
                s.tokens = tokens;
                if (what == rate_class::attention)
                    s.chunks = chunks;
                out.samples.push_back(std::move(s));
            };
            if (x.layers > 0) {
                add(rate_class::attention, x.attention / x.layers);
                add(rate_class::gemm, x.gemm / x.layers);
                add(rate_class::elementwise, x.elementwise / x.layers);
                add(rate_class::linear, x.linear / x.layers);
            }
            if (x.has_output)
                add(rate_class::output_layer, x.output_layer);
        }
    }
    if (mismatched > 0)
        out.notes.push_back(fmt::format("{} (step, micro-batch) cells of the trace have no match "
                                        "in its batches and were left out",
                                        mismatched));
    for (const auto& [key, in] : instances) {
        if (in.members != in.group_size)
            continue;
        rate_sample s;
        s.what = rate_class::collective;
        s.op = in.op;
        s.group_size = in.group_size;
        s.bytes = in.bytes;
        s.seconds = in.min_seconds;
        s.intra_node = true;
        s.label =
            fmt::format("step {} {} #{} (group {})", key.step, key.name, key.occurrence, key.group);
        out.samples.push_back(std::move(s));
    }
    if (measured && !instances.empty())
        out.notes.push_back("collectives: each instance's shortest member (waiting for the others "
                            "removed as far as it can be), all members taken as one host");
    if (!measured)
        out.notes.push_back("collectives: a simulated trace's collectives hold the simulator's "
                            "waiting; not fitted");
    if (out.samples.empty())
        throw input_error(dir, "no layer work of the recorded batches found in the trace "
                               "(attention, GEMM, element-wise or linear operations)");
    return out;
}

} // namespace wlb::runtime
