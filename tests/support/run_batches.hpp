// Packer-made, sharder-sharded training steps for the run numerics checks (unit tests over the
// fake communicator and the MPI probe under mpirun), the single-rank reference, and the
// comparison of a rank's gradients with the reference's part. The batches go through the same
// tuner::pack_and_shard the CLI runs, with the real packers (plain: fixed-length sequences;
// wlb: variable-length micro-batches) and every sharding policy.
#pragma once

#include "runtime/comm/fake_communicator.hpp"
#include "runtime/parallel/layout.hpp"
#include "runtime/train/cpu_trainer.hpp"
#include "runtime/train/decoder.hpp"
#include "runtime/train/decoder_step.hpp"
#include "tuner/cost/hardware.hpp"
#include "tuner/data/document_stream.hpp"
#include "tuner/job/run_job.hpp"
#include "tuner/sharding/make_sharder.hpp"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace wlb::test {

/// The decoder of the numerics checks: 4 layers (pp x vpp up to 4 chunks), 4 heads (tp 2).
inline runtime::decoder_config run_test_model() {
    runtime::decoder_config d;
    d.name = "test";
    d.vocab = 24;
    d.hidden = 16;
    d.heads = 4;
    d.ffn = 24;
    d.layers = 4;
    return d;
}

inline constexpr std::int64_t run_test_context = 48;
inline constexpr std::uint64_t run_test_seed = 7;

/// Document lengths 1..context from a fixed seed, a few of them long.
inline std::vector<std::int64_t> run_test_lengths() {
    std::mt19937_64 rng(5);
    std::vector<std::int64_t> out;
    for (int i = 0; i < 200; ++i)
        out.push_back(i % 7 == 3 ? static_cast<std::int64_t>(30 + rng() % 19)
                                 : static_cast<std::int64_t>(1 + rng() % 12));
    return out;
}

/// Step 0 of `packing` (plain or wlb) over the test documents for layout `l` (dp replicas, 2
/// micro-batches each), every micro-batch sharded by `sharding`.
inline runtime::training_step run_test_step(const runtime::layout& l, tuner::packing_policy packing,
                                            tuner::sharding_policy sharding) {
    const auto model = run_test_model();
    const auto costs =
        tuner::run_cost_model(runtime::model_spec_of(model), tuner::hardware_preset("cpu-dev-vm"),
                              l, runtime::precision::f64);
    tuner::packing_config pc;
    pc.policy = packing;
    pc.context_tokens = run_test_context;
    pc.replicas = l.dp();
    pc.micro_batches = 2;
    pc.smax_tokens = tuner::default_smax(run_test_context);
    pc.thresholds = tuner::default_thresholds(2, run_test_context);
    tuner::sharding_spec spec;
    spec.policy = sharding;
    tuner::stream_options so;
    so.context_tokens = run_test_context;
    tuner::document_stream stream(std::make_unique<tuner::vector_source>(run_test_lengths()), so);
    const auto packer = tuner::make_packer(pc, costs);
    const auto sharder = tuner::make_sharder(spec, costs);
    auto batches = tuner::pack_and_shard(stream, *packer, *sharder, 1, "test documents");
    return std::move(batches.steps.front());
}

/// The whole global batch on one rank, whole documents, no parallelism.
template <typename T>
runtime::step_gradients<T> run_reference(const runtime::global_batch& batch) {
    runtime::global_batch one;
    one.step = batch.step;
    one.replicas.resize(1);
    runtime::batch_shards shards(1);
    for (const auto& r : batch.replicas)
        for (const auto& mb : r.micro_batches) {
            one.replicas[0].micro_batches.push_back(mb);
            shards[0].push_back(runtime::whole_documents(mb));
        }
    const auto model = run_test_model();
    const auto full = runtime::init_decoder_params<T>(model, run_test_seed);
    runtime::fake_world world(1);
    auto c = world.communicator_for(0);
    return runtime::compute_step_gradients<T>(model, full, one, shards, {*c, *c, *c});
}

/// The part of full-model gradients world rank `rank` of `l` holds.
template <typename T>
runtime::decoder_params<T> run_reference_part(const runtime::decoder_params<T>& full,
                                              const runtime::layout& l, int rank) {
    const auto c = l.coords_of(rank);
    return runtime::stage_decoder_params(
        runtime::shard_decoder_params(run_test_model(), full, l.tp(), c.tp), l.pp(), c.pp, l.vpp());
}

/// Tolerances: double 1e-5 relative to the element (plus 1e-9 of the tensor's largest gradient
/// for elements that are sums cancelling to ~0); float 1e-3 relative plus 1e-5 of the tensor's
/// largest gradient (float rounding over a few hundred operations per value).
struct tolerance {
    double relative;
    double of_scale;
};
inline constexpr tolerance double_tolerance{1e-5, 1e-9};
inline constexpr tolerance float_tolerance{1e-3, 1e-5};

/// Empty when `got` (loss and gradients) equals the reference within `tol`; else the first
/// mismatch. `worst` receives the largest error relative to the allowed one (<= 1 passes).
template <typename T, typename R>
std::string
compare_with_reference(const runtime::step_gradients<T>& got, const runtime::step_gradients<R>& ref,
                       const runtime::decoder_params<R>& ref_part, tolerance tol, double& worst) {
    const double loss_err = std::abs(got.loss - ref.loss) / (tol.relative * std::abs(ref.loss));
    worst = std::max(worst, loss_err);
    if (loss_err > 1.0)
        return fmt::format("loss {} but the single-rank run has {}", got.loss, ref.loss);
    if (got.labelled_tokens != ref.labelled_tokens)
        return fmt::format("{} labelled tokens, the single-rank run has {}", got.labelled_tokens,
                           ref.labelled_tokens);
    std::vector<const std::vector<R>*> want;
    ref_part.for_each([&](const std::string&, const std::vector<R>& t) { want.push_back(&t); });
    std::size_t i = 0;
    std::string problem;
    got.grads.for_each([&](const std::string& name, const std::vector<T>& t) {
        const auto& w = *want[i++];
        if (!problem.empty())
            return;
        if (t.size() != w.size()) {
            problem =
                fmt::format("{}: {} values, the reference part has {}", name, t.size(), w.size());
            return;
        }
        double scale = 0;
        for (auto v : w)
            scale = std::max(scale, std::abs(static_cast<double>(v)));
        if (!w.empty() && scale == 0.0) {
            problem = fmt::format("{}: the reference gradient is all zero (tests nothing)", name);
            return;
        }
        for (std::size_t j = 0; j < t.size(); ++j) {
            const double ref_v = static_cast<double>(w[j]);
            const double err = std::abs(static_cast<double>(t[j]) - ref_v) /
                               (tol.relative * std::abs(ref_v) + tol.of_scale * scale);
            worst = std::max(worst, err);
            if (err > 1.0) {
                problem = fmt::format("{}[{}] = {} but the single-rank run has {}", name, j,
                                      static_cast<double>(t[j]), ref_v);
                return;
            }
        }
    });
    return problem;
}

/// The packings and shardings every layout is checked with.
inline const std::vector<tuner::packing_policy>& run_test_packings() {
    static const std::vector<tuner::packing_policy> p = {tuner::packing_policy::plain,
                                                         tuner::packing_policy::wlb};
    return p;
}
inline const std::vector<tuner::sharding_policy>& run_test_shardings() {
    static const std::vector<tuner::sharding_policy> s = {
        tuner::sharding_policy::per_seq, tuner::sharding_policy::per_doc,
        tuner::sharding_policy::adaptive, tuner::sharding_policy::hybrid};
    return s;
}

/// One rank's check of one (packing, sharding) case: its trainer's gradients of the step
/// against the reference. Collective over `world`. Returns the problem, empty when it passed.
template <typename T>
std::string check_run_case(runtime::communicator& world, const runtime::layout& l,
                           tuner::packing_policy packing, tuner::sharding_policy sharding,
                           double& worst) {
    const auto step = run_test_step(l, packing, sharding);
    const auto ref = run_reference<double>(step.batch);
    runtime::trainer_options o;
    o.seed = run_test_seed;
    o.schedule = runtime::parse_schedule("auto", l.vpp());
    runtime::cpu_trainer<T> trainer(world, run_test_model(), l, o);
    const auto got = trainer.gradients(step.batch, step.shards);
    const auto problem =
        compare_with_reference(got, ref, run_reference_part(ref.grads, l, world.rank()),
                               sizeof(T) == 8 ? double_tolerance : float_tolerance, worst);
    if (problem.empty())
        return {};
    return fmt::format("{} {} {} ({}) world rank {}: {}", l.spec(), tuner::to_string(packing),
                       tuner::to_string(sharding), sizeof(T) == 8 ? "double" : "float",
                       world.rank(), problem);
}

} // namespace wlb::test
