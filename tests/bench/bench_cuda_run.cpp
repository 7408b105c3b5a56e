// The GPU figures of issue [cuda-run], from `run --backend cuda`'s own library calls
// (tuner/job/run_execute.hpp), printed as markdown tables, every figure labelled:
//
//   1. loss: the small model at tp=2,cp=2,pp=2 emulated on one GPU beside the CPU backend (float,
//      one thread per rank) on the same batches: per step, the relative difference (tolerance
//      1e-2: bf16 activations with fp32 accumulation) and the loss falling.
//   2. CP sharding at 7B layer shapes (hidden 4096, 32 heads of 128, ffn 11008, vocab 32000, one
//      layer), 64K and 128K context, cp = 2 and 4, per-seq / per-doc / adaptive: per CP rank the
//      measured attention (forward + backward) and layer compute seconds of one step after a
//      warm-up, beside the cost model's prediction for the same shards, and the max/mean.
//   3. PP packing at the same layer shapes (a 4K vocabulary, so the output layer does not
//      unbalance the stages), plain against wlb, pp = 2 (64K) and 4 (32K), one layer per stage,
//      2 x pp micro-batches: the forward seconds of each micro-batch on stage 0 and the emulated
//      step, beside their predictions.
//   4. analyze on the traces of 2 (per-seq, cp = 4) and 3 (plain, the largest pp): the cause the
//      what-if attribution names (expected: CP sharding, PP packing).
//   5. capture overhead: a real (not emulated) one-GPU run, 7B layer shapes at 16K tokens, the
//      mean wall-clock step with the CUPTI + NVTX capture and without.
//
//   bench_cuda_run [--quick] [--device cuda|host] [--data SRC] [--hardware h200]
//                  [--budget-seconds S] [--keep DIR]
//
// --quick: 64K only, pp = 2 only, fewer steps. --device host runs sections 1-4 on the host
// reference device at tiny shapes (a dry run of the whole path without a GPU; its seconds mean
// nothing). Skips (exit 0, "bench_cuda_run: skipped: ...") without a CUDA device. Sections past
// --budget-seconds are left out with a note.
#include "kernels/device_query.hpp"
#include "profiler/analysis/analysis.hpp"
#include "profiler/capture/run_capture.hpp"
#include "runtime/comm/fake_communicator.hpp"
#include "runtime/device/host_device.hpp"
#include "runtime/train/cpu_trainer.hpp"
#include "runtime/train/cuda_backend.hpp"
#include "tuner/job/run_execute.hpp"
#include "tuner/spec/job_spec.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fmt/format.h>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <unistd.h>
#include <vector>

using namespace wlb;

namespace {

struct options {
    bool quick = false;
    bool host = false;
    std::string data = "default";
    std::string hardware = "h200";
    double budget_seconds = 240;
    std::string keep; ///< keep the trace directories here
};

using clock_type = std::chrono::steady_clock;
const auto started = clock_type::now();

double elapsed() {
    return std::chrono::duration<double>(clock_type::now() - started).count();
}

bool over_budget(const options& o, const char* section) {
    if (elapsed() < o.budget_seconds)
        return false;
    std::printf("\n_%s left out: the budget of %.0f s is spent (%.0f s)._\n", section,
                o.budget_seconds, elapsed());
    return true;
}

/// A model of 7B's layer shapes (or the host dry run's tiny ones) with `layers` layers.
runtime::model_spec layer_model(const options& o, int layers) {
    auto m = runtime::model_preset("7b");
    if (o.host) {
        m.hidden = 64, m.heads = 4, m.kv_heads = 4, m.ffn = 128, m.vocab = 256;
        m.name = "7b-shaped (host dry run: tiny)";
    } else {
        m.name = "7b layer shapes";
    }
    m.layers = layers;
    return m;
}

std::string temp_dir(const options& o, const std::string& name) {
    const auto base = o.keep.empty() ? std::filesystem::temp_directory_path() /
                                           ("wlb-bench-cuda-run-" + std::to_string(::getpid()))
                                     : std::filesystem::path(o.keep);
    const auto dir = base / name;
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir.parent_path());
    return dir.string();
}

tuner::job_spec make_job(const options& o, const runtime::model_spec& model,
                         const std::string& layout, const std::string& context,
                         const std::string& packing, const std::string& sharding, int micro) {
    tuner::job_options jo;
    jo.model = "7b";
    jo.hardware = o.hardware;
    jo.layout = layout;
    jo.data = o.data;
    jo.context = context;
    jo.packing.policy = packing;
    jo.packing.micro_batches = micro;
    jo.sharding = sharding;
    auto job = tuner::resolve_job(jo);
    job.model = model;
    return job;
}

struct case_run {
    tuner::prepared_run prepared;
    runtime::run_result result;
    std::string trace_dir;
    std::string device;
};

case_run run_emulated(const options& o, const tuner::job_spec& job, std::int64_t steps,
                      const std::string& name, double learning_rate = 1e-2) {
    tuner::run_request r;
    r.steps = steps;
    r.learning_rate = learning_rate;
    r.backend = runtime::backend_kind::cuda;
    r.device.emulate = true;
    r.trace_dir = temp_dir(o, name);
    case_run c{tuner::prepare_run(job, r), {}, r.trace_dir, {}};
    runtime::device_factory host;
    if (o.host)
        host = [](int) {
            return runtime::make_host_device();
        };
    c.result = tuner::execute_emulated_run(
        job, c.prepared, r, {}, [](std::size_t, const runtime::step_record&) {}, c.device, host);
    return c;
}

bool layer_op(const std::string& n) {
    return !(n.starts_with("embedding") || n.starts_with("output layer") || n == "optimizer step" ||
             n == "token layout");
}

/// Per rank: measured seconds of the last step's attention and layer compute.
struct rank_times {
    double attention = 0, layer = 0;
};

std::vector<rank_times> measured_ranks(const std::string& dir, std::int64_t step) {
    runtime::trace_reader reader(dir);
    std::vector<rank_times> out(static_cast<std::size_t>(reader.meta().job_layout.world_size()));
    for (int r : reader.ranks())
        reader.read_rank(r, [&](runtime::trace_event&& e) {
            if (e.step != step || e.where != runtime::lane::compute)
                return;
            const double s = static_cast<double>(e.dur_ns) * 1e-9;
            if (e.name.starts_with("attention"))
                out[static_cast<std::size_t>(r)].attention += s;
            if (layer_op(e.name))
                out[static_cast<std::size_t>(r)].layer += s;
        });
    return out;
}

double max_over_mean(const std::vector<double>& v) {
    double mx = 0, sum = 0;
    for (double x : v) {
        mx = std::max(mx, x);
        sum += x;
    }
    return sum > 0 ? mx * static_cast<double>(v.size()) / sum : 0.0;
}

// ---- 1. loss -------------------------------------------------------------------------------

void loss_section(const options& o) {
    std::printf("\n## 1. Loss: emulated on %s beside the CPU backend (measured)\n\n",
                o.host ? "the host reference" : "one GPU");
    // Different data every step: the loss falls as a trend with SGD at lr 1 (the CPU backend's
    // runs show it: lr 1e-2 leaves it flat over a few steps).
    const auto model = runtime::model_preset(o.host ? "tiny" : "small");
    const std::int64_t steps = o.quick || o.host ? 4 : 6;
    const double lr = 1.0;
    const auto job =
        make_job(o, model, "tp=2,cp=2,pp=2,dp=1", o.host ? "512" : "2k", "wlb", "per-seq", 4);
    auto device = run_emulated(o, job, steps, "loss", lr);
    // The CPU backend on the same batches, one thread per rank.
    const auto& prepared = device.prepared;
    std::vector<double> cpu(static_cast<std::size_t>(steps));
    runtime::trainer_options t;
    t.seed = 1;
    t.learning_rate = lr;
    t.schedule = prepared.schedule;
    runtime::fake_world::run(job.layout.world_size(), 600.0, [&](runtime::communicator& world) {
        runtime::cpu_trainer<float> trainer(world, prepared.decoder, job.layout, t);
        for (std::int64_t s = 0; s < steps; ++s) {
            const auto& st = prepared.batches.steps[static_cast<std::size_t>(s)];
            const auto g = trainer.gradients(st.batch, st.shards);
            trainer.apply(g);
            if (world.rank() == 0)
                cpu[static_cast<std::size_t>(s)] = g.loss;
        }
    });
    std::printf("model %s (hidden %d, %d heads of %d, %d layers), layout tp=2,cp=2,pp=2, %lld "
                "tokens of context, wlb packing, per-seq sharding, SGD lr %g; device: %s\n\n",
                model.name.c_str(), model.hidden, model.heads, model.head_dim(), model.layers,
                static_cast<long long>(job.context_tokens), lr, device.device.c_str());
    std::printf("| step | CPU backend loss (float) | device loss (bf16) | relative difference | "
                "within 1e-2 |\n| ---: | ---: | ---: | ---: | --- |\n");
    double first_half = 0, second_half = 0;
    for (std::int64_t s = 0; s < steps; ++s) {
        const double d = device.result.steps[static_cast<std::size_t>(s)].loss;
        const double c = cpu[static_cast<std::size_t>(s)];
        const double rel = std::abs(d - c) / c;
        std::printf("| %lld | %.6f | %.6f | %.2e | %s |\n", static_cast<long long>(s), c, d, rel,
                    rel <= 1e-2 ? "yes" : "NO");
        (2 * s < steps ? first_half : second_half) += d;
    }
    const double last = device.result.steps.back().loss, first = device.result.steps[0].loss;
    std::printf("\nloss falling (device; each step draws new documents, so as a trend: the "
                "second half's mean below the first half's, and the last step below the first): "
                "%s\n",
                second_half < first_half && last < first ? "yes" : "NO");
}

// ---- 2. CP sharding ------------------------------------------------------------------------

struct traced_case {
    std::string dir;
    std::string what;
};

std::optional<traced_case> sharding_section(const options& o) {
    std::printf(
        "\n## 2. CP sharding at 7B layer shapes, one layer (measured beside predicted)\n\n");
    std::printf("Per CP rank, one step after a warm-up step, seconds: attention forward + "
                "backward, and the layer's compute (attention, GEMMs, norms, rotary, SwiGLU, "
                "residuals, K/V layout); predicted: the cost model on the same shards. Imbalance: "
                "max / mean over the CP ranks.\n\n");
    std::printf("| context | cp | sharding | rank | tokens | attention measured (ms) | attention "
                "predicted (ms) | layer measured (ms) | layer predicted (ms) |\n| --- | ---: | --- "
                "| ---: | ---: "
                "| ---: | ---: | ---: | ---: |\n");
    std::optional<traced_case> per_seq;
    std::vector<std::string> imbalance;
    const std::vector<std::string> contexts =
        o.host
            ? std::vector<std::string>{"1k"}
            : (o.quick ? std::vector<std::string>{"64k"} : std::vector<std::string>{"64k", "128k"});
    for (const auto& ctx : contexts)
        for (int cp : {2, 4})
            for (const std::string pol : {"per-seq", "per-doc", "adaptive"}) {
                if (over_budget(o, "The rest of section 2"))
                    return per_seq;
                const auto job =
                    make_job(o, layer_model(o, 1), fmt::format("cp={}", cp), ctx, "plain", pol, 1);
                auto c = run_emulated(o, job, 2, fmt::format("cp-{}-{}-{}", ctx, cp, pol));
                const auto ranks = measured_ranks(c.trace_dir, 1);
                const auto& st = c.prepared.batches.steps[1];
                const auto& costs = c.prepared.costs;
                std::vector<double> ma, pa;
                for (int r = 0; r < cp; ++r) {
                    double attn = 0, linear = 0;
                    std::int64_t tokens = 0;
                    for (const auto& shard : st.shards[0]) {
                        const auto& s = shard.ranks[static_cast<std::size_t>(r)];
                        for (const auto& ch : s.chunks)
                            tokens += ch.q_tokens;
                        attn += costs.attention_fwd_seconds(s) + costs.attention_bwd_seconds(s);
                    }
                    linear = costs.linear_fwd_seconds(tokens) + costs.linear_bwd_seconds(tokens);
                    const auto& m = ranks[static_cast<std::size_t>(r)];
                    ma.push_back(m.attention);
                    pa.push_back(attn);
                    std::printf("| %s | %d | %s | %d | %lld | %.3f | %.3f | %.3f | %.3f |\n",
                                ctx.c_str(), cp, pol.c_str(), r, static_cast<long long>(tokens),
                                1e3 * m.attention, 1e3 * attn, 1e3 * m.layer,
                                1e3 * (attn + linear));
                }
                imbalance.push_back(fmt::format("| {} | {} | {} | {:.3f} | {:.3f} |", ctx, cp, pol,
                                                max_over_mean(ma), max_over_mean(pa)));
                if (pol == "per-seq" && cp == 4)
                    per_seq = traced_case{c.trace_dir, fmt::format("{} cp=4 per-seq", ctx)};
            }
    std::printf("\n| context | cp | sharding | attention imbalance measured | predicted |\n| --- | "
                "---: | --- | ---: | ---: |\n");
    for (const auto& line : imbalance)
        std::printf("%s\n", line.c_str());
    return per_seq;
}

// ---- 3. PP packing -------------------------------------------------------------------------

std::optional<traced_case> packing_section(const options& o) {
    std::printf("\n## 3. PP packing at 7B layer shapes, one layer per stage (measured beside "
                "predicted)\n\n");
    std::printf("Stage 0's forward seconds of each micro-batch of the step after the warm-up "
                "(max / mean over the micro-batches), and the step on the emulation's virtual "
                "clocks (transfers: measured device copies) beside the simulator's step.\n\n");
    std::printf("| pp | context | packing | micro-batch forwards measured (ms) | imbalance "
                "measured | imbalance predicted | step emulated (ms) | step predicted (ms) |\n| "
                "---: | --- | --- | --- | ---: | ---: | ---: | ---: |\n");
    std::optional<traced_case> plain;
    std::vector<std::pair<int, std::string>> cases = {{2, "64k"}};
    if (!o.quick)
        cases.emplace_back(4, "32k");
    if (o.host)
        cases = {{2, "1k"}};
    for (const auto& [pp, ctx] : cases)
        for (const std::string pol : {"plain", "wlb"}) {
            if (over_budget(o, "The rest of section 3"))
                return plain;
            // A 4K vocabulary: the output layer stays small beside a layer (with 7B's 32K it
            // costs the last stage most of a layer, and stage partitioning would hide packing).
            auto model = layer_model(o, pp);
            model.vocab = std::min(model.vocab, 4096);
            const auto job =
                make_job(o, model, fmt::format("pp={}", pp), ctx, pol, "per-seq", 2 * pp);
            auto c = run_emulated(o, job, 2, fmt::format("pp-{}-{}", pp, pol));
            runtime::trace_reader reader(c.trace_dir);
            std::map<int, double> fwd;
            reader.read_rank(0, [&](runtime::trace_event&& e) {
                if (e.step == 1 && e.where == runtime::lane::compute && e.micro_batch >= 0 &&
                    e.ph == runtime::phase::fwd)
                    fwd[e.micro_batch] += static_cast<double>(e.dur_ns) * 1e-9;
            });
            std::vector<double> measured, predicted;
            std::string list;
            const auto& st = c.prepared.batches.steps[1];
            const auto& costs = c.prepared.costs;
            for (std::size_t m = 0; m < st.batch.replicas[0].micro_batches.size(); ++m) {
                const auto& mb = st.batch.replicas[0].micro_batches[m];
                measured.push_back(fwd[static_cast<int>(m)]);
                predicted.push_back(costs.micro_batch_fwd_seconds(mb));
                list += fmt::format("{}{:.2f}", m ? ", " : "", 1e3 * measured.back());
            }
            std::printf("| %d | %s | %s | %s | %.3f | %.3f | %.2f | %.2f |\n", pp, ctx.c_str(),
                        pol.c_str(), list.c_str(), max_over_mean(measured),
                        max_over_mean(predicted), 1e3 * c.result.steps[1].seconds,
                        1e3 * c.prepared.predicted_seconds[1]);
            if (pol == "plain")
                plain = traced_case{c.trace_dir, fmt::format("pp={} {} plain", pp, ctx)};
        }
    return plain;
}

// ---- 4. analyze ------------------------------------------------------------------------------

void analyze_section(const std::vector<std::pair<traced_case, profiler::cause>>& cases) {
    std::printf("\n## 4. analyze on the emulated traces (simulated what-if on measured "
                "durations)\n\n| trace | dominant cause | expected | ms it costs (steps 1..) | "
                "as expected |\n| --- | --- | --- | ---: | --- |\n");
    for (const auto& [c, expected] : cases) {
        profiler::analysis_options ao;
        ao.steps = profiler::parse_step_range("1:");
        const auto r = profiler::analyze({c.dir}, ao);
        const auto dominant = r.attribution.dominant;
        const double lost =
            dominant ? r.attribution.lost_s[static_cast<std::size_t>(*dominant)] : 0.0;
        std::printf("| %s | %s | %s | %.3f | %s |\n", c.what.c_str(),
                    dominant ? std::string(profiler::cause_title(*dominant)).c_str() : "none",
                    std::string(profiler::cause_title(expected)).c_str(), 1e3 * lost,
                    dominant == expected ? "yes" : "NO");
    }
}

// ---- 5. capture overhead ---------------------------------------------------------------------

void overhead_section(const options& o) {
    std::printf("\n## 5. Capture overhead: one GPU, not emulated (measured wall clock)\n\n");
    const auto job =
        make_job(o, layer_model(o, 2), "tp=1,cp=1,pp=1,dp=1", "16k", "plain", "per-seq", 1);
    tuner::run_request r;
    r.steps = o.quick ? 6 : 11;
    r.backend = runtime::backend_kind::cuda;
    const auto prepared = tuner::prepare_run(job, r);
    auto world = runtime::make_world_communicator({});
    std::printf("| capture | mean step (s), steps 1.. | overhead |\n| --- | ---: | ---: |\n");
    double plain = 0;
    for (const bool capture : {false, true, false, true}) {
        auto cap = capture ? profiler::run_capture::make_default() : nullptr;
        auto backend =
            tuner::make_run_backend(*world, job, prepared, r, cap ? cap->ranges(0) : nullptr);
        double sum = 0;
        int n = 0;
        tuner::execute_run(*backend, *world, job, prepared, r,
                           [&](std::size_t i, const runtime::step_record& rec) {
                               if (i > 0) {
                                   sum += rec.seconds;
                                   ++n;
                               }
                           });
        const double mean = sum / std::max(n, 1);
        std::string note;
        if (cap) {
            const auto s = cap->finish(temp_dir(o, "overhead-cupti"), job.layout,
                                       tuner::run_sharded_steps(prepared), world.get());
            note = fmt::format(" ({} events, {} dropped)", s.events, s.dropped);
        }
        if (!capture)
            plain = mean;
        std::printf("| %s%s | %.5f | %s |\n", capture ? "CUPTI + NVTX" : "none", note.c_str(), mean,
                    capture ? fmt::format("{:+.2f}%", 100.0 * (mean - plain) / plain).c_str()
                            : "-");
    }
}

} // namespace

int main(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "bench_cuda_run: %s needs a value\n", a.c_str());
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--quick")
            o.quick = true;
        else if (a == "--device")
            o.host = value() == "host";
        else if (a == "--data")
            o.data = value();
        else if (a == "--hardware")
            o.hardware = value();
        else if (a == "--budget-seconds")
            o.budget_seconds = std::stod(value());
        else if (a == "--keep")
            o.keep = value();
        else {
            std::fprintf(stderr, "bench_cuda_run: unknown argument %s\n", a.c_str());
            return 2;
        }
    }
    if (!o.host) {
        const auto report = kernels::query_devices();
        if (report.devices.empty()) {
            std::printf("bench_cuda_run: skipped: %s\n", report.reason.c_str());
            return 0;
        }
        std::printf("# bench_cuda_run on %s%s\n", report.devices[0].name.c_str(),
                    o.quick ? " (--quick)" : "");
    } else {
        std::printf("# bench_cuda_run on the host reference device (a dry run: its seconds mean "
                    "nothing)\n");
    }
    try {
        loss_section(o);
        std::vector<std::pair<traced_case, profiler::cause>> traced;
        if (!over_budget(o, "Section 2"))
            if (auto c = sharding_section(o))
                traced.emplace_back(*c, profiler::cause::cp_sharding);
        if (!over_budget(o, "Section 3"))
            if (auto c = packing_section(o))
                traced.emplace_back(*c, profiler::cause::pp_packing);
        if (!over_budget(o, "Section 4"))
            analyze_section(traced);
        if (!o.host && !over_budget(o, "Section 5"))
            overhead_section(o);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_cuda_run: error: %s\n", e.what());
        return 1;
    }
    if (o.keep.empty())
        std::filesystem::remove_all(std::filesystem::temp_directory_path() /
                                    ("wlb-bench-cuda-run-" + std::to_string(::getpid())));
    std::printf("\n(%.0f s)\n", elapsed());
    return 0;
}
