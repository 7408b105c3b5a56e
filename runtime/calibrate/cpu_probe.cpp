#include "runtime/calibrate/cpu_probe.hpp"

#include "base/error.hpp"
#include "base/host_memory.hpp"
#include "kernels/ops.hpp"
#include "runtime/calibrate/probe_design.hpp"
#include "runtime/comm/fake_communicator.hpp"
#include "runtime/train/decoder.hpp"
#include "runtime/train/decoder_step.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <fmt/format.h>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <unistd.h>

namespace wlb::runtime {
namespace {

/// The cost-model class of a decoder operation by its trace name; nullopt: not modelled per layer
/// (embedding, token layout) or communication.
struct op_class {
    rate_class what;
    bool backward;
};

std::optional<op_class> classify(std::string_view name) {
    const bool bwd = name.ends_with(" bwd");
    if (!bwd && !name.ends_with(" fwd"))
        return std::nullopt;
    const auto base = name.substr(0, name.size() - 4);
    if (base == "qkv proj" || base == "out proj" || base == "mlp")
        return op_class{rate_class::gemm, bwd};
    if (base == "attn norm" || base == "mlp norm" || base == "residual" || base == "kv layout")
        return op_class{rate_class::elementwise, bwd};
    if (base == "attention")
        return op_class{rate_class::attention, bwd};
    if (base == "output layer")
        return op_class{rate_class::output_layer, bwd};
    return std::nullopt;
}

/// Seconds per (class, pass) of one probe step.
struct class_seconds final : step_observer {
    std::map<std::pair<rate_class, bool>, double> seconds;
    void record(const op_record& op) override {
        if (op.lane != op_lane::compute)
            return;
        if (const auto c = classify(op.name))
            seconds[{c->what, c->backward}] += static_cast<double>(op.dur_ns) * 1e-9;
    }
};

constexpr std::array<rate_class, 4> probed_classes = {
    rate_class::gemm, rate_class::elementwise, rate_class::attention, rate_class::output_layer};

/// The probe steps' wall seconds on this rank, in the order every rank ran them.
using step_walls = std::vector<double>;

template <typename T>
std::vector<rate_sample> probe_layers(const decoder_config& one_layer, communicator& world,
                                      const cpu_probe_options& o, step_walls& walls) {
    const auto probes = probe_batches(cpu_probe_design(o.quick));
    const auto params = init_decoder_params<T>(one_layer, o.seed);
    fake_world solo(1);
    auto self = solo.communicator_for(0);
    // times[probe][class x pass][repeat]
    const std::size_t kinds = probed_classes.size() * 2;
    std::vector<std::vector<std::vector<double>>> times(probes.size(),
                                                        std::vector<std::vector<double>>(kinds));
    const int total = o.repeats * static_cast<int>(probes.size());
    int done = 0;
    { // one untimed step first: the first touches of memory are not a rate
        global_batch warm;
        warm.replicas.push_back({{probes.back().mb}});
        parallel_groups groups{*self, *self, *self};
        (void)compute_step_gradients<T>(one_layer, params, warm, {{probes.back().shard}}, groups);
    }
    for (int r = 0; r < o.repeats; ++r)
        for (std::size_t p = 0; p < probes.size(); ++p) {
            global_batch batch;
            batch.replicas.push_back({{probes[p].mb}});
            const batch_shards shards = {{probes[p].shard}};
            class_seconds split;
            parallel_groups groups{*self, *self, *self};
            groups.observer = &split;
            world.barrier(); // the ranks share the machine as in a run, in lockstep
            const auto t0 = std::chrono::steady_clock::now();
            (void)compute_step_gradients<T>(one_layer, params, batch, shards, groups);
            walls.push_back(
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
            for (std::size_t c = 0; c < probed_classes.size(); ++c)
                for (const bool bwd : {false, true})
                    times[p][2 * c + (bwd ? 1 : 0)].push_back(
                        split.seconds[{probed_classes[c], bwd}]);
            if (o.progress)
                o.progress({"layer and attention probes", ++done, total});
        }
    std::vector<rate_sample> out;
    for (std::size_t p = 0; p < probes.size(); ++p)
        for (std::size_t c = 0; c < probed_classes.size(); ++c)
            for (const bool bwd : {false, true}) {
                const auto s = summarize_repeats(times[p][2 * c + (bwd ? 1 : 0)]);
                rate_sample x;
                x.what = probed_classes[c];
                x.backward = bwd;
                x.label = probes[p].label;
                x.seconds = s.median;
                x.spread = s.spread;
                x.repeats = o.repeats;
                x.tokens = probes[p].mb.tokens();
                if (x.what == rate_class::attention)
                    x.chunks = probes[p].shard.ranks[0].chunks;
                out.push_back(std::move(x));
            }
    return out;
}

/// Every rank's samples replaced by the ranks' means (seconds and spread).
void average_over_ranks(communicator& world, std::vector<rate_sample>& samples) {
    if (world.size() <= 1 || samples.empty())
        return;
    std::vector<double> v;
    for (const auto& s : samples) {
        v.push_back(s.seconds);
        v.push_back(s.spread);
    }
    world.all_reduce(std::span<double>(v));
    for (std::size_t i = 0; i < samples.size(); ++i) {
        samples[i].seconds = v[2 * i] / world.size();
        samples[i].spread = v[2 * i + 1] / world.size();
    }
}

template <typename F>
double timed_median(communicator& world, int repeats, int inner, F&& f, double& spread) {
    std::vector<double> s;
    for (int r = 0; r < repeats; ++r) {
        world.barrier();
        const auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < inner; ++i)
            f();
        s.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() /
                    inner);
    }
    const auto m = summarize_repeats(std::move(s));
    spread = m.spread;
    return m.median;
}

std::string host_name() {
    char name[256] = {};
    if (gethostname(name, sizeof name - 1) != 0)
        return "unknown host";
    return name;
}

} // namespace

std::string describe_host() {
    std::string cpu;
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    int cores = 0;
    while (std::getline(in, line)) {
        if (line.starts_with("model name") && cpu.empty())
            if (const auto colon = line.find(':'); colon != std::string::npos)
                cpu = line.substr(colon + 2);
        if (line.starts_with("processor"))
            ++cores;
    }
    return fmt::format("host {}, {} ({} logical cores)", host_name(),
                       cpu.empty() ? "unknown CPU" : cpu, cores);
}

std::vector<rate_sample> measure_world_collectives(communicator& world, int repeats, bool quick) {
    std::vector<rate_sample> out;
    const int n = world.size();
    if (n <= 1)
        return out;
    // Every member on one host? Compare hashes of the host names (exact in a double's mantissa).
    std::vector<double> mine = {static_cast<double>(std::hash<std::string>{}(host_name()) &
                                                    ((std::uint64_t{1} << 52) - 1))};
    std::vector<double> all(static_cast<std::size_t>(n));
    world.all_gather(std::span<const double>(mine), std::span<double>(all));
    const bool one_host =
        std::all_of(all.begin(), all.end(), [&](double h) { return h == all[0]; });
    const int inner_small = quick ? 20 : 200;
    auto add = [&](collective_op op, int group, double bytes, double seconds, double spread,
                   std::string label) {
        rate_sample s;
        s.what = rate_class::collective;
        s.op = op;
        s.group_size = group;
        s.bytes = bytes;
        s.seconds = seconds;
        s.spread = spread;
        s.repeats = repeats;
        s.intra_node = one_host;
        s.label = std::move(label);
        out.push_back(std::move(s));
    };
    double spread = 0;
    {
        std::vector<double> one = {1.0};
        const double t = timed_median(
            world, repeats, inner_small, [&] { world.all_reduce(std::span<double>(one)); }, spread);
        add(collective_op::all_reduce, n, 8.0, t, spread, "all-reduce of one value");
    }
    const std::vector<std::size_t> totals =
        quick ? std::vector<std::size_t>{1 << 16}
              : std::vector<std::size_t>{1 << 16, 1 << 20, 1 << 23};
    for (const std::size_t total_bytes : totals) {
        const std::size_t block = std::max<std::size_t>(1, total_bytes / sizeof(double) / n);
        std::vector<double> part(block, 1.0), whole(block * static_cast<std::size_t>(n), 0.0);
        const double bytes = static_cast<double>(whole.size() * sizeof(double));
        const int inner = total_bytes >= (1 << 23) ? 3 : 20;
        const double g = timed_median(
            world, repeats, inner,
            [&] { world.all_gather(std::span<const double>(part), std::span<double>(whole)); },
            spread);
        add(collective_op::all_gather, n, bytes, g, spread,
            fmt::format("all-gather of {} KiB", bytes / 1024));
        const double rs = timed_median(
            world, repeats, inner,
            [&] { world.reduce_scatter(std::span<const double>(whole), std::span<double>(part)); },
            spread);
        add(collective_op::reduce_scatter, n, bytes, rs, spread,
            fmt::format("reduce-scatter of {} KiB", bytes / 1024));
    }
    // Point-to-point between pairs (0, 1), (2, 3), ...: half a round trip.
    const int r = world.rank();
    const int peer = (r % 2 == 0) ? r + 1 : r - 1;
    for (const std::size_t bytes : {std::size_t{8}, std::size_t{1} << 20}) {
        std::vector<double> buf(bytes / sizeof(double), 1.0);
        const double t = timed_median(
            world, repeats, bytes > 8 ? 5 : inner_small,
            [&] {
                if (peer >= n)
                    return;
                if (r % 2 == 0) {
                    world.send(std::span<const double>(buf), peer, 7);
                    world.recv(std::span<double>(buf), peer, 8);
                } else {
                    world.recv(std::span<double>(buf), peer, 7);
                    world.send(std::span<const double>(buf), peer, 8);
                }
            },
            spread);
        add(collective_op::p2p, 2, static_cast<double>(bytes), t / 2.0, spread,
            fmt::format("send/receive of {} bytes (half a round trip)", bytes));
    }
    world.barrier();
    return out;
}

double lockstep_penalty(communicator& world, std::span<const double> walls) {
    const auto n = static_cast<std::size_t>(world.size());
    if (n <= 1 || walls.empty())
        return 0.0;
    // Each rank's walls in its own slot; the sum over ranks then holds them all.
    std::vector<double> all(n * walls.size(), 0.0);
    std::copy(walls.begin(), walls.end(),
              all.begin() + static_cast<std::ptrdiff_t>(static_cast<std::size_t>(world.rank()) *
                                                        walls.size()));
    world.all_reduce(std::span<double>(all));
    double slowest = 0.0, mean = 0.0;
    for (std::size_t i = 0; i < walls.size(); ++i) {
        double most = 0.0, sum = 0.0;
        for (std::size_t r = 0; r < n; ++r) {
            most = std::max(most, all[r * walls.size() + i]);
            sum += all[r * walls.size() + i];
        }
        slowest += most;
        mean += sum / static_cast<double>(n);
    }
    return mean > 0.0 ? slowest / mean - 1.0 : 0.0;
}

rate_samples measure_cpu(const model_spec& model, communicator& world,
                         const cpu_probe_options& options) {
    WLB_EXPECTS(options.repeats >= 1, "calibration repeats {}", options.repeats);
    auto one_layer = decoder_config_of(model);
    one_layer.layers = 1; // per-layer rates: one layer at the model's width
    kernels::set_blas_threads(1);
    (void)retain_freed_memory();
    rate_samples out;
    out.source = "cpu probe";
    out.model = model;
    out.tp = 1;
    out.bytes_per_element = options.numbers == precision::f64 ? 8 : 4;
    out.ranks = world.size();
    out.machine = describe_host();
    step_walls walls;
    out.samples = options.numbers == precision::f64
                      ? probe_layers<double>(one_layer, world, options, walls)
                      : probe_layers<float>(one_layer, world, options, walls);
    average_over_ranks(world, out.samples);
    if (world.size() > 1) {
        out.lockstep_penalty = lockstep_penalty(world, walls);
        out.lockstep_ranks = world.size();
    }
    auto comm = measure_world_collectives(world, std::max(3, options.repeats), options.quick);
    if (options.progress)
        options.progress({"collectives", 1, 1});
    if (comm.empty())
        out.notes.push_back("collectives: one process, nothing to measure (start it with mpirun "
                            "-np N to measure MPI); left at the base hardware's values");
    else if (!comm.front().intra_node)
        out.notes.push_back("collectives: the ranks span several hosts; measured as inter-node");
    out.samples.insert(out.samples.end(), comm.begin(), comm.end());
    return out;
}

} // namespace wlb::runtime
