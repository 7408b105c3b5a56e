#include "tuner/job/run_job.hpp"

#include "base/error.hpp"
#include "runtime/parallel/pipeline_schedule.hpp"
#include "runtime/train/make_backend.hpp"
#include "tuner/search/simulate_job.hpp"
#include "tuner/sharding/make_sharder.hpp"

#include <fmt/format.h>

namespace wlb::tuner {

cost_model run_cost_model(const runtime::model_spec& model, const hardware_config& hardware,
                          const runtime::layout& layout, runtime::precision numbers) {
    cost_options o;
    o.bytes_per_element = numbers == runtime::precision::f64 ? 8 : 4;
    return cost_model(model, hardware, layout, o);
}

run_batches pack_and_shard(document_stream& stream, packer& p, const sharder& s, std::int64_t steps,
                           std::string_view source) {
    run_batches out;
    const document_pull pull = [&](std::int64_t drawn_step) {
        return stream.next(drawn_step);
    };
    for (std::int64_t step = 0; step < steps; ++step) {
        auto batch = p.pack(step, pull);
        bool empty = !batch.has_value();
        if (batch)
            for (const auto& r : batch->replicas)
                for (const auto& mb : r.micro_batches)
                    empty = empty || mb.docs.empty();
        if (empty)
            throw input_error(source,
                              fmt::format("the data ends after {} full steps; the run asks for {} "
                                          "(use fewer --steps, a smaller --context or more data)",
                                          step, steps));
        runtime::training_step t;
        t.batch = std::move(*batch);
        t.batch.step = step;
        std::array<int, 4> applied{};
        for (const auto& r : t.batch.replicas) {
            t.shards.emplace_back();
            for (const auto& mb : r.micro_batches) {
                auto d = s.shard(mb);
                ++applied[static_cast<std::size_t>(d.applied)];
                t.shards.back().push_back(std::move(d.sharded));
            }
        }
        out.steps.push_back(std::move(t));
        out.applied.push_back(applied);
    }
    return out;
}

std::vector<double> predict_run_seconds(const cost_model& costs, const runtime::decoder_config& d,
                                        const std::vector<runtime::training_step>& steps,
                                        const runtime::schedule_options& schedule) {
    const auto& l = costs.layout();
    simulate_job_options o;
    o.plan.schedule = schedule;
    o.plan.partition.layers = runtime::decoder_chunk_layers(d.layers, l.pp() * l.vpp());
    o.plan.overlap_grad_reduce = false;
    o.plan.bucket_params = 2.0 * static_cast<double>(runtime::decoder_parameter_count(d));
    std::vector<runtime::sharded_step> sharded;
    for (const auto& s : steps)
        sharded.push_back({s.batch.step, s.shards});
    const auto result = simulate_job(costs, sharded, o);
    std::vector<double> seconds;
    for (const auto& s : result.steps)
        seconds.push_back(s.step_seconds);
    return seconds;
}

runtime::launch_info check_launch(const runtime::layout& l) {
    const auto launch = runtime::detect_launch();
    if (launch.size != l.world_size())
        throw input_error(fmt::format("layout {} needs {} ranks but the job has {} (launcher {}); "
                                      "start it with mpirun -np {}",
                                      l.spec(), l.world_size(), launch.size, launch.launcher,
                                      l.world_size()));
    return launch;
}

prepared_run prepare_run(const job_spec& job, const run_request& request) {
    const auto& l = job.layout;
    auto decoder = runtime::decoder_config_of(job.model);
    decoder.validate(l.tp());
    if (decoder.layers < static_cast<std::int64_t>(l.pp()) * l.vpp())
        throw input_error(fmt::format("model {}: {} layers cannot fill pp={} x vpp={} model "
                                      "chunks",
                                      decoder.name, decoder.layers, l.pp(), l.vpp()));
    // The executors cut the layers evenly over the model chunks (runtime::decoder_chunk_layers).
    if (job.partition != "even")
        throw input_error(fmt::format("--partition {}: wlbtune run cuts the layers evenly over "
                                      "the model chunks (even); other partitions are for the "
                                      "simulator",
                                      job.partition));
    const auto schedule = runtime::parse_schedule(job.schedule, l.vpp());
    auto costs = run_cost_model(job.model, job.hardware, l, request.numbers);
    const auto sharding = job.sharding.value_or(sharding_spec{});
    const auto inputs = job.inputs();
    auto stream = job.open_stream();
    const auto packer = make_packer(job.packing, costs);
    const auto sharder = make_sharder(sharding, costs);
    auto batches = pack_and_shard(stream, *packer, *sharder, request.steps, job.data.source);
    auto predicted = predict_run_seconds(costs, decoder, batches.steps, schedule);
    return {std::move(decoder),   std::move(costs),  schedule, std::move(batches),
            std::move(predicted), stream.describe(), inputs};
}

std::unique_ptr<runtime::training_backend>
make_run_backend(runtime::backend_kind kind, runtime::communicator& world, const job_spec& job,
                 const prepared_run& run, const run_request& request) {
    runtime::backend_options bo;
    bo.model = run.decoder;
    bo.job_layout = job.layout;
    bo.numbers = request.numbers;
    bo.trainer.seed = request.seed;
    bo.trainer.learning_rate = request.learning_rate;
    bo.trainer.schedule = run.schedule;
    return runtime::make_backend(kind, world, bo);
}

runtime::run_result
execute_run(runtime::training_backend& backend, runtime::communicator& world, const job_spec& job,
            const prepared_run& run, const run_request& request,
            const std::function<void(std::size_t, const runtime::step_record&)>& on_step) {
    runtime::run_options ro;
    ro.trace_dir = request.trace_dir;
    ro.trace_info.source = std::string(backend.name());
    ro.trace_info.note =
        fmt::format("measured by wlbtune run --backend {} ({}): host timers "
                    "(steady_clock) around every operation; model {}",
                    backend.name(), runtime::to_string(request.numbers), run.decoder.name);
    ro.trace_manifest_extra = wlb::report_header(runtime::trace_schema, run.inputs);
    // What ran, for `wlbtune calibrate --from-trace`: the model and the run's element size.
    ro.trace_manifest_extra["model"] = runtime::to_json(job.model);
    ro.trace_manifest_extra["bytes_per_element"] = run.costs.options().bytes_per_element;
    std::size_t i = 0;
    return runtime::run_training(backend, world, job.layout, run.batches.steps, ro,
                                 [&](const runtime::step_record& r) { on_step(i++, r); });
}

} // namespace wlb::tuner
