// bench_cpu_run: measured (not simulated) step times of `wlbtune run`'s CPU executor on 2 MPI
// ranks, each beside the simulator's prediction of the same steps (docs/benchmarks.md).
//   A. cp=2, model small, a long-document-heavy stream packed into fixed 4K sequences (plain):
//      per-seq, per-doc and adaptive sharding of the same steps.
//   B. pp=2 (1F1B, 4 micro-batches per step), model small, 2K context: plain against wlb packing
//      of the same document stream.
// The variants of a part run interleaved step by step in one job, each on its own trainer (same
// seed), so load on the shared machine hits them alike. Step time: wall clock of the slower rank
// from a barrier to the end of its update; the mean is over steps 1..K-1 (step 0 warms up).
// Predictions (simulated; tuner::predict_run_seconds, the executor's own schedule and layer cut):
// with the hardware calibrated in this job just before the measurements (cpu_calibration.hpp),
// and with the cpu-dev-vm preset. Error = predicted / measured - 1.
// Usage: mpirun -np 2 bench_cpu_run [--steps K] [--quick]
#include "cpu_calibration.hpp"
#include "runtime/backend.hpp"
#include "runtime/communicator.hpp"
#include "runtime/decoder.hpp"
#include "runtime/error.hpp"
#include "runtime/train_run.hpp"
#include "tuner/document_stream.hpp"
#include "tuner/open_document_source.hpp"
#include "tuner/run_job.hpp"

#include <cstring>
#include <fmt/format.h>
#include <memory>
#include <string>
#include <vector>

using namespace wlb;
using namespace wlb::runtime;

namespace {

struct variant {
    std::string name;
    std::unique_ptr<training_backend> backend;
    std::vector<training_step> steps;
    std::vector<double> predicted_calibrated, predicted_preset, measured;
    double cp_pairs_imbalance = 0.0; // mean over steps of max/mean attention pairs per CP rank
    double packing_imbalance = 0.0;  // mean over steps of max/mean predicted micro-batch work
    double tokens_per_step = 0.0;
};

struct part {
    std::string title;
    layout l{1, 1, 1, 1};
    std::string data;
    std::int64_t context = 0;
    int micro_batches = 1;
};

variant make_variant(communicator& world, const part& p, const decoder_config& model,
                     const tuner::hardware_config& calibrated, tuner::packing_policy packing,
                     tuner::sharding_policy sharding, std::int64_t steps, std::string name) {
    const auto costs = tuner::run_cost_model(model, calibrated, p.l, precision::f32);
    const auto preset =
        tuner::run_cost_model(model, tuner::hardware_preset("cpu-dev-vm"), p.l, precision::f32);
    tuner::packing_config pc;
    pc.policy = packing;
    pc.context_tokens = p.context;
    pc.replicas = p.l.dp();
    pc.micro_batches = p.micro_batches;
    pc.smax_tokens = tuner::default_smax(p.context);
    pc.thresholds = tuner::default_thresholds(2, p.context);
    tuner::sharding_spec spec;
    spec.policy = sharding;
    tuner::stream_options so;
    so.context_tokens = p.context;
    tuner::document_stream stream(tuner::open_document_source(p.data), so);
    // Packing and sharding decisions use the preset (as `wlbtune run` does by default).
    const auto packer = tuner::make_packer(pc, preset);
    const auto sharder = tuner::make_sharder(spec, preset);
    auto batches = tuner::pack_and_shard(stream, *packer, *sharder, steps, p.data);
    variant v;
    v.name = std::move(name);
    const auto schedule = parse_schedule("auto", p.l.vpp());
    v.predicted_calibrated = tuner::predict_run_seconds(costs, model, batches.steps, schedule);
    v.predicted_preset = tuner::predict_run_seconds(preset, model, batches.steps, schedule);
    for (const auto& s : batches.steps) {
        for (const auto& r : s.shards)
            for (const auto& mb : r) {
                std::vector<double> pairs;
                for (const auto& rank : mb.ranks) {
                    double n = 0;
                    for (const auto& c : rank.chunks)
                        n += static_cast<double>(causal_pairs(c.q_tokens, c.q_offset));
                    pairs.push_back(n);
                }
                double sum = 0, max = 0;
                for (double x : pairs) {
                    sum += x;
                    max = std::max(max, x);
                }
                v.cp_pairs_imbalance += max * static_cast<double>(pairs.size()) / sum;
            }
        for (const auto& r : s.batch.replicas) {
            double sum = 0, max = 0;
            for (const auto& mb : r.micro_batches) {
                const double w = preset.micro_batch_fwd_seconds(mb);
                sum += w;
                max = std::max(max, w);
                v.tokens_per_step += static_cast<double>(mb.tokens());
            }
            v.packing_imbalance += max * static_cast<double>(r.micro_batches.size()) / sum;
        }
    }
    const double n = static_cast<double>(batches.steps.size());
    v.cp_pairs_imbalance /= n * p.micro_batches * p.l.dp();
    v.packing_imbalance /= n * p.l.dp();
    v.tokens_per_step /= n;
    backend_options bo;
    bo.model = model;
    bo.job_layout = p.l;
    bo.numbers = precision::f32;
    bo.trainer.schedule = schedule;
    v.backend = make_backend(backend_kind::cpu, world, bo);
    v.steps = std::move(batches.steps);
    return v;
}

double mean_from_1(const std::vector<double>& x) {
    const std::size_t from = x.size() >= 2 ? 1 : 0;
    double s = 0;
    for (std::size_t i = from; i < x.size(); ++i)
        s += x[i];
    return s / static_cast<double>(x.size() - from);
}

void run_part(communicator& world, const part& p, std::vector<variant>& variants,
              std::int64_t steps) {
    const run_options untraced;
    for (std::int64_t s = 0; s < steps; ++s)
        for (auto& v : variants) {
            const auto r = run_training(*v.backend, world, p.l,
                                        {v.steps[static_cast<std::size_t>(s)]}, untraced);
            v.measured.push_back(r.steps.front().seconds);
        }
    if (world.rank() != 0)
        return;
    fmt::print("\n{} (layout {}, {}, context {}, {} micro-batch(es) per step, {} steps; mean over "
               "steps 1..{})\n\n",
               p.title, p.l.spec(), p.data, p.context, p.micro_batches, steps, steps - 1);
    fmt::print("| variant | tokens/step | CP pairs max/mean | packing imbalance (predicted) | "
               "measured s/step | predicted, calibrated in this run | error | predicted, "
               "cpu-dev-vm | error |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (const auto& v : variants) {
        const double m = mean_from_1(v.measured);
        const double pc = mean_from_1(v.predicted_calibrated);
        const double pp = mean_from_1(v.predicted_preset);
        fmt::print("| {} | {:.0f} | {:.2f} | {:.2f} | {:.3f} | {:.3f} | {:+.0f}% | {:.3f} | "
                   "{:+.0f}% |\n",
                   v.name, v.tokens_per_step, v.cp_pairs_imbalance, v.packing_imbalance, m, pc,
                   100.0 * (pc / m - 1.0), pp, 100.0 * (pp / m - 1.0));
    }
    fmt::print("\nper step, measured s: ");
    for (const auto& v : variants)
        fmt::print("{} [{:.3f}] ", v.name, fmt::join(v.measured, ", "));
    fmt::print("\n");
}

} // namespace

int main(int argc, char** argv) {
    bool quick = false;
    std::int64_t steps = 6;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--quick") == 0)
            quick = true;
        else if (std::strcmp(argv[i], "--steps") == 0 && i + 1 < argc)
            steps = std::stoll(argv[++i]);
    }
    try {
        auto world = make_world_communicator({.watchdog_seconds = 600.0});
        if (world->size() != 2) {
            fmt::print(stderr, "bench_cpu_run: start it with mpirun -np 2\n");
            return 2;
        }
        // The backends set one BLAS thread per rank; calibrate the same way.
        kernels::set_blas_threads(1);
        const decoder_config model = decoder_preset("small");
        const auto calibrated = bench::calibrate_cpu<float>(model, world.get());
        if (world->rank() == 0)
            fmt::print("calibrated in this run: GEMM {:.1f} GFLOP/s, attention fwd {:.1f} GFLOP/s "
                       "at 1K-token chunks, backward rate ratio {:.2f}, element-wise {:.2f} GB/s, "
                       "MPI {:.2f} GB/s and {:.1f} us per step\n",
                       calibrated.gemm_tflops * 1e3, calibrated.attention_fwd_tflops(1024) * 1e3,
                       calibrated.attention_bwd_rate_ratio, calibrated.hbm_gbytes_per_s,
                       calibrated.nvlink_gbytes_per_s, calibrated.nvlink_latency_us);

        part a;
        a.title = "A. CP sharding of long-document-heavy packs";
        a.l = layout(1, 2, 1, 1);
        a.context = quick ? 1024 : 4096;
        a.data = fmt::format("synthetic:mixture?mu=6&sigma=1&weight=0.15&xmin={}&alpha=1&n=20000&"
                             "seed=1&max={}",
                             a.context * 3 / 8, a.context);
        a.micro_batches = 1;
        std::vector<variant> va;
        for (auto [policy, name] : {std::pair{tuner::sharding_policy::per_seq, "per-seq"},
                                    std::pair{tuner::sharding_policy::per_doc, "per-doc"},
                                    std::pair{tuner::sharding_policy::adaptive, "adaptive"}})
            va.push_back(make_variant(*world, a, model, calibrated, tuner::packing_policy::plain,
                                      policy, steps, name));
        run_part(*world, a, va, steps);

        part b;
        b.title = "B. Pipeline packing";
        b.l = layout(1, 1, 2, 1);
        b.context = quick ? 512 : 2048;
        b.data = fmt::format("synthetic:mixture?mu=6&sigma=1&weight=0.15&xmin={}&alpha=1&n=20000&"
                             "seed=2&max={}",
                             b.context * 3 / 8, b.context);
        b.micro_batches = 4;
        std::vector<variant> vb;
        for (auto [policy, name] : {std::pair{tuner::packing_policy::plain, "plain"},
                                    std::pair{tuner::packing_policy::wlb, "wlb (2 queues)"}})
            vb.push_back(make_variant(*world, b, model, calibrated, policy,
                                      tuner::sharding_policy::per_seq, steps, name));
        run_part(*world, b, vb, steps);
    } catch (const wlb::error& e) {
        fmt::print(stderr, "bench_cpu_run: error: {}\n", e.what());
        return static_cast<int>(e.code());
    }
    return 0;
}
