// bench_cpu_run: measured (not simulated) step times of `wlbtune run`'s CPU executor on 2 MPI
// ranks, each beside the simulator's prediction of the same steps (docs/benchmarks.md).
//   A. cp=2, model small, a long-document-heavy stream packed into fixed 4K sequences (plain):
//      per-seq, per-doc and adaptive sharding of the same steps.
//   B. pp=2 (1F1B, 4 micro-batches of 4K per step), model small, WLB-LLM's length shape scaled
//      to a 4K context: plain (fixed length, documents cut at the boundaries), ffd (fixed length,
//      whole documents) and wlb packing (variable length, 2 outlier queues) of the same document
//      stream.
// The variants of a part run interleaved step by step in one job, each on its own trainer (same
// seed), so load on the shared machine hits them alike. Step time: wall clock of the slower rank
// from a barrier to the end of its update; the median over steps 1..K-1 (step 0 warms up; the
// median resists the load spikes of a shared machine). Predictions (simulated;
// tuner::predict_run_seconds, the executor's own schedule and layer cut): with the hardware
// calibrated in this job just before and just after the part's measurements (the mean of the
// two; `wlbtune calibrate`'s library: runtime/calibrate/cpu_probe.hpp, tuner/cost/rate_fit.hpp),
// and with the cpu-dev-vm preset. Error = predicted / measured - 1; the
// "vs" columns are the median over steps of a variant's step time divided by the first variant's in
// the same step (measured by measured, predicted by predicted), which cancels most of the machine's
// speed and load drift and leaves what the tuner decides on. Usage: mpirun -np 2 bench_cpu_run
// [--steps K] [--quick]
#include "base/error.hpp"
#include "kernels/ops.hpp"
#include "runtime/calibrate/cpu_probe.hpp"
#include "runtime/comm/communicator.hpp"
#include "runtime/train/decoder.hpp"
#include "runtime/train/make_backend.hpp"
#include "runtime/train/train_run.hpp"
#include "tuner/cost/rate_fit.hpp"
#include "tuner/data/document_stream.hpp"
#include "tuner/data/open_document_source.hpp"
#include "tuner/job/run_job.hpp"
#include "tuner/sharding/make_sharder.hpp"

#include <algorithm>
#include <array>
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
    std::array<int, 4> applied{}; // micro-batches per applied sharding layout
};

struct part {
    std::string title;
    layout l{1, 1, 1, 1};
    std::string data;
    std::int64_t context = 0;
    int micro_batches = 1;
};

variant make_variant(communicator& world, const part& p, const decoder_config& model,
                     tuner::packing_policy packing, tuner::sharding_policy sharding,
                     std::int64_t steps, std::string name) {
    const auto preset = tuner::run_cost_model(
        runtime::model_spec_of(model), tuner::hardware_preset("cpu-dev-vm"), p.l, precision::f32);
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
    v.predicted_preset = tuner::predict_run_seconds(preset, model, batches.steps, schedule);
    for (const auto& a : batches.applied)
        for (std::size_t i = 0; i < a.size(); ++i)
            v.applied[i] += a[i];
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

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/// The median of steps 1..K-1 (step 0 warms up): robust to the load spikes of a shared machine.
double median_from_1(const std::vector<double>& x) {
    return median({x.begin() + (x.size() >= 2 ? 1 : 0), x.end()});
}

/// The median over steps 1..K-1 of x[s] / base[s]: paired steps ran back to back, so their
/// ratio cancels most of the machine's load drift.
double paired_ratio(const std::vector<double>& x, const std::vector<double>& base) {
    std::vector<double> r;
    for (std::size_t s = x.size() >= 2 ? 1 : 0; s < x.size(); ++s)
        r.push_back(x[s] / base[s]);
    return median(r);
}

std::string applied_text(const std::array<int, 4>& a) {
    std::string s;
    for (std::size_t p = 0; p < a.size(); ++p)
        if (a[p] > 0)
            s += fmt::format("{}{} {}", s.empty() ? "" : ", ",
                             tuner::to_string(static_cast<tuner::sharding_policy>(p)), a[p]);
    return s;
}

tuner::hardware_config calibrate_now(communicator& world, const decoder_config& model,
                                     const char* when);

/// The mean of two calibrations (the same probe design, so the same attention table lengths).
tuner::hardware_config mean_of(const tuner::hardware_config& a, const tuner::hardware_config& b) {
    auto h = a;
    h.name = "cpu-calibrated-in-run";
    auto mean = [](double x, double y) {
        return 0.5 * (x + y);
    };
    h.gemm_tflops = mean(a.gemm_tflops, b.gemm_tflops);
    h.peak_bf16_tflops = h.gemm_tflops;
    h.output_layer_tflops = mean(a.output_layer_tflops, b.output_layer_tflops);
    auto tables = [&](std::vector<tuner::rate_point>& t, const std::vector<tuner::rate_point>& u) {
        for (std::size_t i = 0; i < t.size() && i < u.size(); ++i)
            t[i].tflops = mean(t[i].tflops, u[i].tflops);
    };
    tables(h.attention_fwd, b.attention_fwd);
    tables(h.attention_bwd, b.attention_bwd);
    h.attention_fwd_token_pairs = mean(a.attention_fwd_token_pairs, b.attention_fwd_token_pairs);
    h.attention_bwd_token_pairs = mean(a.attention_bwd_token_pairs, b.attention_bwd_token_pairs);
    h.attention_bwd_rate_ratio = mean(a.attention_bwd_rate_ratio, b.attention_bwd_rate_ratio);
    h.hbm_gbytes_per_s = mean(a.hbm_gbytes_per_s, b.hbm_gbytes_per_s);
    h.nvlink_gbytes_per_s = h.network_gbytes_per_s =
        mean(a.nvlink_gbytes_per_s, b.nvlink_gbytes_per_s);
    h.nvlink_latency_us = h.network_latency_us = mean(a.nvlink_latency_us, b.nvlink_latency_us);
    return h;
}

void run_part(communicator& world, const part& p, const decoder_config& model,
              std::vector<variant>& variants, std::int64_t steps) {
    // Calibrated just before and just after the part's steps; the predictions use the mean, so
    // load drift during the part weighs on both sides alike.
    const auto before = calibrate_now(world, model, "before");
    const run_options untraced;
    for (std::int64_t s = 0; s < steps; ++s)
        for (auto& v : variants) {
            const auto r = run_training(*v.backend, world, p.l,
                                        {v.steps[static_cast<std::size_t>(s)]}, untraced);
            v.measured.push_back(r.steps.front().seconds);
        }
    const auto after = calibrate_now(world, model, "after");
    const auto costs = tuner::run_cost_model(runtime::model_spec_of(model), mean_of(before, after),
                                             p.l, precision::f32);
    for (auto& v : variants)
        v.predicted_calibrated =
            tuner::predict_run_seconds(costs, model, v.steps, parse_schedule("auto", p.l.vpp()));
    if (world.rank() != 0)
        return;
    fmt::print("{} (layout {}, {}, context {}, {} micro-batch(es) per step, {} steps; medians "
               "over steps 1..{})\n\n",
               p.title, p.l.spec(), p.data, p.context, p.micro_batches, steps, steps - 1);
    fmt::print("| variant | sharding applied | tokens/step | CP pairs max/mean | packing imbalance "
               "(predicted) | measured s/step | predicted s/step (calibrated in this run) | "
               "error | measured vs {} | predicted vs {} | predicted s/step (cpu-dev-vm) | "
               "error |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
               variants.front().name, variants.front().name);
    const auto& base = variants.front();
    for (const auto& v : variants) {
        const double m = median_from_1(v.measured);
        const double pc = median_from_1(v.predicted_calibrated);
        const double pp = median_from_1(v.predicted_preset);
        fmt::print("| {} | {} | {:.0f} | {:.2f} | {:.2f} | {:.3f} | {:.3f} | {:+.0f}% | {:.3f} | "
                   "{:.3f} | {:.3f} | {:+.0f}% |\n",
                   v.name, applied_text(v.applied), v.tokens_per_step, v.cp_pairs_imbalance,
                   v.packing_imbalance, m, pc, 100.0 * (pc / m - 1.0),
                   paired_ratio(v.measured, base.measured),
                   paired_ratio(v.predicted_calibrated, base.predicted_calibrated), pp,
                   100.0 * (pp / m - 1.0));
    }
    fmt::print("\nper step, measured s: ");
    for (const auto& v : variants)
        fmt::print("{} [{:.3f}] ", v.name, fmt::join(v.measured, ", "));
    fmt::print("\n");
}

tuner::hardware_config calibrate_now(communicator& world, const decoder_config& model,
                                     const char* when) {
    runtime::cpu_probe_options o;
    const auto samples = runtime::measure_cpu(runtime::model_spec_of(model), world, o);
    const auto h = tuner::fit_hardware(samples, tuner::hardware_preset("cpu-dev-vm"),
                                       {.attention_tile = 1, .name = "cpu-calibrated"})
                       .hardware;
    if (world.rank() == 0)
        fmt::print("calibrated {}: GEMM {:.1f} GFLOP/s, attention fwd {:.1f} GFLOP/s at 64-token "
                   "and {:.1f} at 1K-token chunks, backward rate ratio {:.2f}, element-wise "
                   "{:.2f} GB/s, MPI {:.2f} GB/s and {:.1f} us per step\n",
                   when, h.gemm_tflops * 1e3, h.attention_fwd_tflops(64) * 1e3,
                   h.attention_fwd_tflops(1024) * 1e3, h.attention_bwd_rate_ratio,
                   h.hbm_gbytes_per_s, h.nvlink_gbytes_per_s, h.nvlink_latency_us);
    return h;
}

} // namespace

int main(int argc, char** argv) {
    bool quick = false;
    std::int64_t steps = 10;
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
        const decoder_config model = decoder_config_of(model_preset("small"));
        // A: one long document in most 4K packs (10% of documents are 1K-4K tokens, 70% of the
        // tokens), the rest ~100 tokens.
        part a;
        a.title = "A. CP sharding of long-document-heavy packs";
        a.l = layout(1, 2, 1, 1);
        a.context = quick ? 1024 : 4096;
        a.data = fmt::format("synthetic:mixture?mu=4.3&sigma=0.8&weight=0.1&xmin={}&alpha=1&"
                             "n=20000&seed=1&max={}",
                             a.context / 4, a.context);
        a.micro_batches = 1;
        std::vector<variant> va;
        for (auto [policy, name] : {std::pair{tuner::sharding_policy::per_seq, "per-seq"},
                                    std::pair{tuner::sharding_policy::per_doc, "per-doc"},
                                    std::pair{tuner::sharding_policy::adaptive, "adaptive"}})
            va.push_back(
                make_variant(*world, a, model, tuner::packing_policy::plain, policy, steps, name));
        run_part(*world, a, model, va, steps);

        // B: WLB-LLM's shape scaled from 128K to 4K: a ~100-token bulk and a 2% tail of
        // 1K-4K documents.
        part b;
        b.title = "B. Pipeline packing";
        b.l = layout(1, 1, 2, 1);
        b.context = quick ? 1024 : 4096;
        b.data = fmt::format("synthetic:mixture?mu=4.3&sigma=0.8&weight=0.02&xmin={}&alpha=1&"
                             "n=40000&seed=2&max={}",
                             b.context / 4, b.context);
        b.micro_batches = 4;
        std::vector<variant> vb;
        for (auto [policy, name] : {std::pair{tuner::packing_policy::plain, "plain"},
                                    std::pair{tuner::packing_policy::ffd, "ffd"},
                                    std::pair{tuner::packing_policy::wlb, "wlb (2 queues)"}})
            vb.push_back(make_variant(*world, b, model, policy, tuner::sharding_policy::per_seq,
                                      steps, name));
        run_part(*world, b, model, vb, steps);
    } catch (const wlb::error& e) {
        fmt::print(stderr, "bench_cpu_run: error: {}\n", e.what());
        return static_cast<int>(e.code());
    }
    return 0;
}
