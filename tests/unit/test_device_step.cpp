// The device decoder step (runtime/train/device_decoder.hpp) on the host reference device: every
// layout of the CPU run numerics (tp, cp, pp, dp in 1-2, vpp 2, cp = 4), plain and wlb packing,
// every sharding policy: the loss and every parameter gradient equal the CPU backend's
// single-rank run of the same global batch (float tolerance of tests/support/run_batches.hpp),
// both with one rank per thread over the fake communicator (as NCCL runs it: sequence-parallel
// TP, CP key/value exchange, PP transfers, DP reductions) and with every rank in one emulated
// world (as `run --backend cuda --emulate` runs it). Also: the second step after the SGD update,
// grouped-query attention against the same model written with repeated K/V heads, and the
// operations the trace reports, in the CPU step's order.
#include "base/error.hpp"
#include "profiler/analysis/analysis.hpp"
#include "runtime/comm/emulated_world.hpp"
#include "runtime/comm/fake_communicator.hpp"
#include "runtime/device/host_device.hpp"
#include "runtime/train/device_backend.hpp"
#include "runtime/train/device_decoder.hpp"
#include "runtime/train/train_run.hpp"
#include "support/run_batches.hpp"

#include <filesystem>
#include <gtest/gtest.h>
#include <mutex>
#include <set>
#include <unistd.h>

using namespace wlb;
using namespace wlb::test;

namespace {

struct layout_case {
    int tp, cp, pp, dp, vpp;
};

std::vector<layout_case> all_layouts() {
    std::vector<layout_case> out;
    for (int dp : {1, 2})
        for (int pp : {1, 2})
            for (int cp : {1, 2, 4})
                for (int tp : {1, 2})
                    for (int vpp : {1, 2}) {
                        if (tp * cp * pp * dp > 8 || (vpp == 2 && pp == 1))
                            continue;
                        if (cp == 4 && tp * pp * dp > 2)
                            continue;
                        out.push_back({tp, cp, pp, dp, vpp});
                    }
    return out;
}

runtime::backend_options options_for(const runtime::layout& l,
                                     const runtime::decoder_config& model = run_test_model()) {
    runtime::backend_options o;
    o.model = model;
    o.job_layout = l;
    o.trainer.seed = run_test_seed;
    o.trainer.schedule = runtime::parse_schedule("auto", l.vpp());
    return o;
}

runtime::step_gradients<float> result_of(const runtime::step_result& r,
                                         runtime::device_decoder& d) {
    return {r.loss, r.labelled_tokens, d.download_gradients()};
}

/// One rank per thread over the fake communicator, each with its host device.
std::string check_threaded(const runtime::layout& l, tuner::packing_policy packing,
                           tuner::sharding_policy sharding, double& worst) {
    const auto step = run_test_step(l, packing, sharding);
    const auto ref = run_reference<double>(step.batch);
    std::mutex mu;
    std::string first;
    runtime::fake_world::run(l.world_size(), 30.0, [&](runtime::communicator& world) {
        auto g = runtime::make_group_communicators(world, l);
        auto tp = runtime::make_host_device_comm(*g.tp), cp = runtime::make_host_device_comm(*g.cp),
             pp = runtime::make_host_device_comm(*g.pp), dp = runtime::make_host_device_comm(*g.dp);
        const runtime::device_groups groups{*tp, *cp, *pp, *dp, [&](double v) {
                                                std::vector<double> x = {v};
                                                world.all_reduce(std::span<double>(x));
                                                return x[0];
                                            }};
        auto dev = runtime::make_host_device();
        const auto o = options_for(l);
        runtime::device_decoder dec(*dev, o.model, l, world.rank(), o.trainer);
        const auto r = dec.gradients(step.batch, step.shards, groups);
        double w = 0;
        auto problem = compare_with_reference(result_of(r, dec), ref,
                                              run_reference_part(ref.grads, l, world.rank()),
                                              float_tolerance, w);
        std::lock_guard lock(mu);
        worst = std::max(worst, w);
        if (first.empty() && !problem.empty())
            first = fmt::format("{} {} {} world rank {}: {}", l.spec(), tuner::to_string(packing),
                                tuner::to_string(sharding), world.rank(), problem);
    });
    return first;
}

/// Every rank in one emulated world.
std::string check_emulated(const runtime::layout& l, tuner::packing_policy packing,
                           tuner::sharding_policy sharding, double& worst) {
    const auto step = run_test_step(l, packing, sharding);
    const auto ref = run_reference<double>(step.batch);
    runtime::emulated_job job(options_for(l), [](int) { return runtime::make_host_device(); });
    const auto r = job.step(step.batch, step.shards, {}, false);
    for (int rank = 0; rank < l.world_size(); ++rank) {
        double w = 0;
        const runtime::step_result sr{r.loss, r.labelled_tokens};
        auto problem =
            compare_with_reference(result_of(sr, job.decoder(rank)), ref,
                                   run_reference_part(ref.grads, l, rank), float_tolerance, w);
        worst = std::max(worst, w);
        if (!problem.empty())
            return fmt::format("{} {} {} emulated world rank {}: {}", l.spec(),
                               tuner::to_string(packing), tuner::to_string(sharding), rank,
                               problem);
    }
    return {};
}

class DeviceStep : public ::testing::TestWithParam<layout_case> {};

TEST_P(DeviceStep, LossAndEveryGradientEqualTheCpuBackendsSingleRankRun) {
    const auto& c = GetParam();
    const runtime::layout l(c.tp, c.cp, c.pp, c.dp, c.vpp);
    double worst = 0;
    for (auto packing : run_test_packings())
        for (auto sharding : run_test_shardings()) {
            const auto problem = check_threaded(l, packing, sharding, worst);
            EXPECT_TRUE(problem.empty()) << problem;
        }
    EXPECT_LE(worst, 1.0);
}

TEST_P(DeviceStep, EmulatedOnOneDeviceEqualsTheCpuBackendToo) {
    const auto& c = GetParam();
    const runtime::layout l(c.tp, c.cp, c.pp, c.dp, c.vpp);
    double worst = 0;
    for (auto sharding : run_test_shardings()) {
        const auto problem = check_emulated(l, tuner::packing_policy::wlb, sharding, worst);
        EXPECT_TRUE(problem.empty()) << problem;
    }
    EXPECT_LE(worst, 1.0);
}

std::string layout_name(const ::testing::TestParamInfo<layout_case>& info) {
    const auto& c = info.param;
    return fmt::format("tp{}_cp{}_pp{}_dp{}_vpp{}", c.tp, c.cp, c.pp, c.dp, c.vpp);
}

INSTANTIATE_TEST_SUITE_P(Layouts, DeviceStep, ::testing::ValuesIn(all_layouts()), layout_name);

TEST(DeviceStepUpdate, TheSecondStepAfterSgdHasTheCpuBackendsLoss) {
    const runtime::layout l(2, 2, 2, 1);
    const auto step = run_test_step(l, tuner::packing_policy::wlb, tuner::sharding_policy::per_seq);
    auto second = step;
    second.batch.step = 1;
    // The CPU backend on one rank: two steps on the same batch.
    const runtime::layout one(1, 1, 1, 1);
    runtime::global_batch whole;
    whole.replicas.resize(1);
    runtime::batch_shards whole_shards(1);
    for (const auto& r : step.batch.replicas)
        for (const auto& mb : r.micro_batches) {
            whole.replicas[0].micro_batches.push_back(mb);
            whole_shards[0].push_back(runtime::whole_documents(mb));
        }
    std::vector<double> cpu_losses;
    runtime::fake_world::run(1, 30.0, [&](runtime::communicator& world) {
        runtime::cpu_trainer<double> cpu(world, run_test_model(), one, options_for(one).trainer);
        for (int s = 0; s < 2; ++s) {
            const auto g = cpu.gradients(whole, whole_shards);
            cpu.apply(g);
            cpu_losses.push_back(g.loss);
        }
    });
    runtime::emulated_job job(options_for(l), [](int) { return runtime::make_host_device(); });
    const double first = job.step(step.batch, step.shards).loss;
    const double then = job.step(second.batch, second.shards).loss;
    EXPECT_NEAR(first, cpu_losses[0], 1e-4 * cpu_losses[0]);
    EXPECT_NEAR(then, cpu_losses[1], 1e-4 * cpu_losses[1]);
    EXPECT_NE(cpu_losses[0], cpu_losses[1]) << "the update must change the loss";
}

// ---- grouped-query attention --------------------------------------------------------------

runtime::decoder_config gqa_model() {
    auto d = run_test_model();
    d.name = "test-gqa";
    d.kv_heads = 2; // 4 query heads: each K/V head serves 2
    return d;
}

/// The multi-head model that computes what `gqa` (full parameters) computes: every query head
/// gets a copy of its K/V head's columns.
runtime::decoder_params<double> repeat_kv_heads(const runtime::decoder_config& c,
                                                const runtime::decoder_params<float>& gqa) {
    const std::int64_t h = c.hidden, d = c.head_dim(), heads = c.heads, kv = c.kv_head_count();
    const std::int64_t gw = c.qkv_width(), mw = 3 * heads * d;
    runtime::decoder_params<double> m;
    std::vector<std::vector<double>*> out;
    auto copy = [](const std::vector<float>& v) {
        return std::vector<double>(v.begin(), v.end());
    };
    m.embed = copy(gqa.embed);
    m.final_norm = copy(gqa.final_norm);
    m.lm_head = copy(gqa.lm_head);
    for (const auto& gl : gqa.layers) {
        runtime::decoder_layer_params<double> l;
        l.norm1 = copy(gl.norm1);
        l.norm2 = copy(gl.norm2);
        l.wo = copy(gl.wo);
        l.w_gate = copy(gl.w_gate);
        l.w_up = copy(gl.w_up);
        l.w_down = copy(gl.w_down);
        l.wqkv.assign(static_cast<std::size_t>(h * mw), 0.0);
        for (std::int64_t r = 0; r < h; ++r)
            for (std::int64_t col = 0; col < mw; ++col) {
                const std::int64_t part = col / (heads * d), within = col % (heads * d);
                const std::int64_t head = within / d, e = within % d;
                const std::int64_t src =
                    part == 0 ? col
                              : heads * d + (part - 1) * kv * d + (head / (heads / kv)) * d + e;
                l.wqkv[static_cast<std::size_t>(r * mw + col)] =
                    gl.wqkv[static_cast<std::size_t>(r * gw + src)];
            }
        m.layers.push_back(std::move(l));
    }
    return m;
}

TEST(DeviceStepGqa, GroupedQueryAttentionEqualsTheModelWithRepeatedKvHeads) {
    const auto gqa = gqa_model();
    auto mha = gqa;
    mha.kv_heads = 0;
    const runtime::layout one(1, 1, 1, 1);
    const auto step =
        run_test_step(one, tuner::packing_policy::wlb, tuner::sharding_policy::per_seq);
    const auto full = runtime::init_decoder_params<float>(gqa, 11);
    // The CPU step on the repeated model.
    runtime::step_gradients<double> ref;
    runtime::fake_world::run(1, 30.0, [&](runtime::communicator& world) {
        ref = runtime::compute_step_gradients<double>(mha, repeat_kv_heads(gqa, full), step.batch,
                                                      step.shards, {world, world, world});
    });
    auto dev = runtime::make_host_device();
    runtime::device_decoder dec(*dev, gqa, one, 0, options_for(one, gqa).trainer);
    dec.load_params(full);
    runtime::fake_world world(1);
    auto c = world.communicator_for(0);
    auto comm = runtime::make_host_device_comm(*c);
    const runtime::device_groups groups{*comm, *comm, *comm, *comm, {}};
    const auto r = dec.gradients(step.batch, step.shards, groups);
    EXPECT_NEAR(r.loss, ref.loss, 1e-5 * ref.loss);
    const auto got = dec.download_gradients();
    // Q columns equal; each K/V head's columns are the sum over the query heads that share it.
    const std::int64_t h = gqa.hidden, d = gqa.head_dim(), heads = gqa.heads,
                       kv = gqa.kv_head_count(), gw = gqa.qkv_width(), mw = 3 * heads * d;
    double scale = 0, worst = 0;
    for (std::size_t l = 0; l < got.layers.size(); ++l) {
        for (std::int64_t r0 = 0; r0 < h; ++r0)
            for (std::int64_t col = 0; col < gw; ++col) {
                double want = 0;
                if (col < heads * d) {
                    want = ref.grads.layers[l].wqkv[static_cast<std::size_t>(r0 * mw + col)];
                } else {
                    const std::int64_t part = (col - heads * d) / (kv * d);
                    const std::int64_t g = ((col - heads * d) % (kv * d)) / d, e = col % d;
                    for (std::int64_t j = 0; j < heads / kv; ++j)
                        want += ref.grads.layers[l].wqkv[static_cast<std::size_t>(
                            r0 * mw + (part + 1) * heads * d + (g * (heads / kv) + j) * d + e)];
                }
                const double v = got.layers[l].wqkv[static_cast<std::size_t>(r0 * gw + col)];
                scale = std::max(scale, std::abs(want));
                worst = std::max(worst, std::abs(v - want) / (1e-3 * std::abs(want) + 1e-6));
            }
        for (std::size_t i = 0; i < got.layers[l].wo.size(); ++i)
            worst = std::max(worst, std::abs(got.layers[l].wo[i] - ref.grads.layers[l].wo[i]) /
                                        (1e-3 * std::abs(ref.grads.layers[l].wo[i]) + 1e-6));
    }
    EXPECT_GT(scale, 0.0);
    EXPECT_LE(worst, 1.0);
}

TEST(DeviceStepGqa, EveryAxisSplitsGroupedQueryAttentionExactly) {
    const auto gqa = gqa_model();
    const runtime::layout one(1, 1, 1, 1);
    for (const auto& c :
         {layout_case{2, 2, 2, 1, 1}, layout_case{2, 1, 2, 2, 2}, layout_case{1, 4, 1, 2, 1}}) {
        const runtime::layout l(c.tp, c.cp, c.pp, c.dp, c.vpp);
        const auto step =
            run_test_step(l, tuner::packing_policy::wlb, tuner::sharding_policy::per_doc);
        // The same global batch on one rank.
        runtime::global_batch whole;
        whole.replicas.resize(1);
        runtime::batch_shards whole_shards(1);
        for (const auto& r : step.batch.replicas)
            for (const auto& mb : r.micro_batches) {
                whole.replicas[0].micro_batches.push_back(mb);
                whole_shards[0].push_back(runtime::whole_documents(mb));
            }
        runtime::emulated_job single(options_for(one, gqa),
                                     [](int) { return runtime::make_host_device(); });
        const auto ref = single.step(whole, whole_shards, {}, false);
        const auto full_grads = single.decoder(0).download_gradients();
        runtime::emulated_job job(options_for(l, gqa),
                                  [](int) { return runtime::make_host_device(); });
        const auto got = job.step(step.batch, step.shards, {}, false);
        EXPECT_NEAR(got.loss, ref.loss, 1e-5 * ref.loss) << l.spec();
        for (int rank = 0; rank < l.world_size(); ++rank) {
            const auto co = l.coords_of(rank);
            const auto want = runtime::stage_decoder_params(
                runtime::shard_decoder_params(gqa, full_grads, l.tp(), co.tp), l.pp(), co.pp,
                l.vpp());
            runtime::step_gradients<float> g{got.loss, got.labelled_tokens,
                                             job.decoder(rank).download_gradients()};
            runtime::step_gradients<float> w{ref.loss, ref.labelled_tokens, want};
            double worst = 0;
            const auto problem = compare_with_reference(g, w, want, float_tolerance, worst);
            EXPECT_TRUE(problem.empty()) << l.spec() << " rank " << rank << ": " << problem;
        }
    }
}

// ---- what the trace reports ---------------------------------------------------------------

struct collected final : runtime::step_observer {
    std::vector<runtime::op_record> ops;
    std::vector<std::string> names; // op_record::name is a view of static text
    void record(const runtime::op_record& op) override {
        ops.push_back(op);
        names.emplace_back(op.name);
    }
};

/// The operations both steps run one for one: the layers' compute, the embedding and output
/// layer, the pipeline transfers, the optimizer (not: layouts, TP and CP collectives, which
/// differ by design, and the loss reduction, a host sum on the device).
std::vector<std::string> shared_ops(const collected& c) {
    static const std::set<std::string> names = {
        "embedding fwd", "attn norm fwd", "qkv proj fwd",    "attention fwd",    "out proj fwd",
        "mlp norm fwd",  "mlp fwd",       "residual fwd",    "output layer fwd", "output layer bwd",
        "mlp bwd",       "mlp norm bwd",  "out proj bwd",    "attention bwd",    "qkv proj bwd",
        "attn norm bwd", "embedding bwd", "send activation", "recv activation",  "send gradient",
        "recv gradient", "optimizer step"};
    std::vector<std::string> out;
    for (std::size_t i = 0; i < c.ops.size(); ++i) {
        const auto& o = c.ops[i];
        if (!names.contains(c.names[i]))
            continue;
        out.push_back(fmt::format("{} {} mb{} v{} l{} msg{} peer{}", c.names[i],
                                  runtime::op_phase_name(o.phase), o.micro_batch, o.virtual_stage,
                                  o.layer, o.message, o.peer_world_rank));
    }
    return out;
}

TEST(DeviceStepTrace, EveryRankReportsTheCpuStepsOperationsInItsOrder) {
    const runtime::layout l(2, 2, 2, 1, 2);
    const auto step = run_test_step(l, tuner::packing_policy::wlb, tuner::sharding_policy::per_seq);
    std::vector<collected> cpu(static_cast<std::size_t>(l.world_size()));
    runtime::fake_world::run(l.world_size(), 30.0, [&](runtime::communicator& world) {
        runtime::cpu_trainer<float> t(world, run_test_model(), l, options_for(l).trainer);
        auto& obs = cpu[static_cast<std::size_t>(world.rank())];
        const auto g = t.gradients(step.batch, step.shards, &obs);
        t.apply(g, &obs);
    });
    std::vector<collected> dev(static_cast<std::size_t>(l.world_size()));
    std::vector<runtime::step_observer*> observers;
    for (auto& d : dev)
        observers.push_back(&d);
    runtime::emulated_job job(options_for(l), [](int) { return runtime::make_host_device(); });
    job.step(step.batch, step.shards, observers);
    for (int r = 0; r < l.world_size(); ++r) {
        const auto want = shared_ops(cpu[static_cast<std::size_t>(r)]);
        EXPECT_GT(want.size(), 20u);
        EXPECT_EQ(shared_ops(dev[static_cast<std::size_t>(r)]), want) << "world rank " << r;
        // The sequence-parallel collectives: two all-gathers and two reduce-scatters per layer
        // and pass, on the tp lane.
        int gathers = 0, scatters = 0;
        for (std::size_t i = 0; i < dev[static_cast<std::size_t>(r)].ops.size(); ++i) {
            const auto& o = dev[static_cast<std::size_t>(r)].ops[i];
            const auto& n = dev[static_cast<std::size_t>(r)].names[i];
            if (n.starts_with("tp all-gather")) {
                EXPECT_EQ(o.lane, runtime::op_lane::tp);
                ++gathers;
            }
            if (n.starts_with("tp reduce-scatter"))
                ++scatters;
        }
        // 2 micro-batches x 2 model chunks x 1 layer each, forward and backward.
        const int layer_passes = 2 * 2 * 1 * 2;
        EXPECT_EQ(gathers, 2 * layer_passes);
        EXPECT_EQ(scatters, 2 * layer_passes);
    }
}

TEST(DeviceStepTrace, VirtualClockLaysEachRanksWorkBackToBackWithoutOverlap) {
    const runtime::layout l(1, 2, 2, 1);
    const auto step = run_test_step(l, tuner::packing_policy::wlb, tuner::sharding_policy::per_doc);
    std::vector<collected> dev(static_cast<std::size_t>(l.world_size()));
    std::vector<runtime::step_observer*> observers;
    for (auto& d : dev)
        observers.push_back(&d);
    runtime::emulated_job job(options_for(l), [](int) { return runtime::make_host_device(); });
    const auto r = job.step(step.batch, step.shards, observers);
    double last_end_s = 0;
    for (const auto& d : dev) {
        std::int64_t end = 0;
        for (const auto& o : d.ops) {
            EXPECT_GE(o.start_ns, end) << "operations of one rank overlap";
            EXPECT_GE(o.dur_ns, 0);
            end = o.start_ns + o.dur_ns;
        }
        last_end_s = std::max(last_end_s, static_cast<double>(end) * 1e-9);
    }
    EXPECT_GT(r.seconds, 0.0);
    EXPECT_NEAR(r.seconds, last_end_s, 1e-6);
}

} // namespace

// ---- the trace an emulated run writes, read by analyze ------------------------------------

namespace {

TEST(DeviceStepTrace, AnalyzeAttributesTheStepsOfAnEmulatedRunsTrace) {
    const runtime::layout l(2, 2, 2, 1);
    std::vector<runtime::training_step> steps;
    for (int s = 0; s < 3; ++s) {
        auto st = run_test_step(l, tuner::packing_policy::plain, tuner::sharding_policy::per_seq);
        st.batch.step = s;
        steps.push_back(std::move(st));
    }
    const auto dir =
        std::filesystem::temp_directory_path() / ("wlb-device-trace-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    runtime::emulated_job job(options_for(l), [](int) { return runtime::make_host_device(); });
    runtime::run_options ro;
    ro.trace_dir = dir.string();
    ro.trace_info.source = "host-emulated";
    const auto run = runtime::run_emulated_training(job, steps, ro);
    ASSERT_EQ(run.steps.size(), 3u);
    EXPECT_GT(run.trace_events, 0);
    profiler::analysis_options ao;
    ao.steps = profiler::parse_step_range("1:");
    const auto r = profiler::analyze({dir.string()}, ao);
    EXPECT_EQ(r.job.job_layout, l);
    EXPECT_EQ(r.attribution.attributed_steps, 2);
    for (const auto& s : r.attribution.steps)
        EXPECT_TRUE(s.attributed) << s.skipped_reason;
    EXPECT_TRUE(r.attribution.dominant.has_value());
    EXPECT_FALSE(r.breakdown.empty());
    std::filesystem::remove_all(dir);
}

} // namespace
