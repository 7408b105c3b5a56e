#include "tuner/search/evaluate.hpp"

#include "base/error.hpp"
#include "tuner/cost/cost_model.hpp"
#include "tuner/data/document_stream.hpp"
#include "tuner/packing/pack_run.hpp"
#include "tuner/search/simulate_job.hpp"
#include "tuner/sharding/make_sharder.hpp"

#include <algorithm>
#include <fmt/format.h>

namespace wlb::tuner {

document_set materialize_documents(document_stream& stream, std::int64_t min_tokens) {
    stream.rewind();
    document_set set;
    set.description = stream.describe();
    if (auto hint = stream.size_hint(); hint && min_tokens <= 0)
        set.documents.reserve(static_cast<std::size_t>(*hint));
    while (min_tokens <= 0 || set.tokens < min_tokens) {
        auto d = stream.next(0);
        if (!d) {
            set.complete = true;
            break;
        }
        set.tokens += d->tokens;
        set.documents.push_back(*d);
    }
    return set;
}

std::int64_t tokens_for_steps(std::int64_t steps, std::int64_t step_tokens, int window) {
    const std::int64_t margin = std::max<std::int64_t>(16, steps / 2) + 2 * std::max(1, window);
    return (std::max<std::int64_t>(0, steps) + margin) * step_tokens;
}

std::string describe_candidate(const packing_config& p, const sharding_spec& s) {
    std::string sharding(to_string(s.policy));
    if (s.policy == sharding_policy::hybrid)
        sharding += s.hybrid_threshold_tokens ? fmt::format(" >={}", *s.hybrid_threshold_tokens)
                                              : std::string(" auto");
    return describe(p) + " + " + sharding;
}

namespace {

// Shards every micro-batch of `batch`, records the sharding measures, and returns the step in
// the simulator's form.
runtime::sharded_step shard_batch(const runtime::global_batch& batch, const sharder& s,
                                  const cost_model& costs, shard_run_accumulator& acc) {
    runtime::sharded_step out;
    out.step = batch.step;
    out.replicas.resize(batch.replicas.size());
    for (std::size_t rep = 0; rep < batch.replicas.size(); ++rep) {
        const auto& mbs = batch.replicas[rep].micro_batches;
        auto& target = out.replicas[rep];
        target.reserve(mbs.size());
        for (std::size_t i = 0; i < mbs.size(); ++i) {
            shard_record r;
            r.step = batch.step;
            r.replica = static_cast<int>(rep);
            r.micro_batch = static_cast<int>(i);
            r.documents = static_cast<std::int64_t>(mbs[i].docs.size());
            r.tokens = mbs[i].tokens();
            r.decision = s.shard(mbs[i]);
            r.metrics = measure_sharding(r.decision.sharded, costs);
            acc.add(r);
            target.push_back(std::move(r.decision.sharded));
        }
    }
    return out;
}

} // namespace

evaluation evaluate(const cost_model& costs, const document_set& documents,
                    const evaluation_config& config) {
    const auto& l = costs.layout();
    validate(config.packing);
    if (config.packing.replicas != l.dp())
        throw input_error(fmt::format("packing: {} DP replicas per step, but layout {} has dp={}",
                                      config.packing.replicas, l.spec(), l.dp()));
    if (config.steps < 0)
        throw input_error(fmt::format("steps must be >= 0, found {}", config.steps));
    for (const auto& f : config.faults)
        runtime::validate_fault(f, l);

    evaluation out;
    out.name = describe_candidate(config.packing, config.sharding);
    out.packing_params = config.packing;
    out.sharding_params = config.sharding;

    auto packer = make_packer(config.packing, costs);
    const auto sharder = make_sharder(config.sharding, costs);
    run_measures measures(costs, config.packing);
    shard_run_accumulator shards;
    simulate_job_options job_options;
    job_options.plan = config.plan;
    job_options.faults = config.faults;
    job_options.keep_trace = config.keep_trace;
    job_options.top_ranks = config.top_ranks;
    job_simulation job(costs, job_options, config.durations);

    std::size_t next = 0;
    const auto& docs = documents.documents;
    const document_pull pull = [&](std::int64_t step) -> std::optional<runtime::document> {
        if (next >= docs.size()) {
            out.documents_exhausted = true;
            return std::nullopt;
        }
        auto d = docs[next++];
        d.drawn_step = step;
        return d;
    };
    // run_packing's loop, one step at a time so that each step is sharded and simulated as
    // it is packed (the packing wall clock covers packer::pack only).
    std::int64_t done = 0;
    const step_sink per_step = [&](const runtime::global_batch& batch) {
        if (config.on_batch)
            config.on_batch(batch);
        const auto& summary = job.add(shard_batch(batch, *sharder, costs, shards));
        out.step_seconds.push_back(summary.step_seconds);
        ++done;
        if (config.progress)
            config.progress(done, config.steps);
    };
    run_packing(*packer, pull, config.steps, measures, per_step);

    auto result = std::move(job).take();
    out.steps = std::move(result.steps);
    out.total_seconds = result.total_seconds;
    out.mean_step_seconds =
        out.steps.empty() ? 0.0 : out.total_seconds / static_cast<double>(out.steps.size());
    out.trace = std::move(result.trace);
    out.packing = measures.summary();
    out.packing_steps = measures.steps();
    out.sharding = shards.summary();
    out.documents_drawn = static_cast<std::int64_t>(next);
    return out;
}

} // namespace wlb::tuner
