#include "tuner/job/run_job.hpp"

#include "base/error.hpp"
#include "base/host_memory.hpp"
#include "runtime/parallel/pipeline_schedule.hpp"
#include "tuner/search/simulate_job.hpp"
#include "tuner/sharding/make_sharder.hpp"

#include <cmath>
#include <fmt/format.h>

namespace wlb::tuner {

cost_model run_cost_model(const runtime::model_spec& model, const hardware_config& hardware,
                          const runtime::layout& layout, runtime::precision numbers) {
    cost_options o;
    o.bytes_per_element = numbers == runtime::precision::f64 ? 8 : 4;
    o.split_output_layer = false; // the CPU decoder runs the whole head on every TP rank
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

namespace {

// The CPU backend holds each rank's share of the weights, their gradients and Adam's two
// moments in host memory (4 arrays of the parameters). A model whose share alone exceeds this
// host's memory is refused before anything is allocated, rather than failing deep in a step.
void check_host_memory(const runtime::model_spec& model, const runtime::layout& l,
                       runtime::precision numbers) {
    const double element_bytes = numbers == runtime::precision::f64 ? 8.0 : 4.0;
    const double shard = model.total_params() / (static_cast<double>(l.tp()) * l.pp());
    const double need_bytes = 4.0 * element_bytes * shard;
    const auto host_bytes = static_cast<double>(wlb::host_physical_bytes());
    if (host_bytes > 0 && need_bytes > host_bytes)
        throw input_error(fmt::format("model {}: {:.3g} parameters; each rank of tp={} x pp={} "
                                      "holds {:.3g} GB of weights, gradients and optimizer state "
                                      "in host memory, more than this host's {:.3g} GB",
                                      model.name, model.total_params(), l.tp(), l.pp(),
                                      need_bytes / 1e9, host_bytes / 1e9));
}

} // namespace

prepared_run prepare_run(const job_spec& job, const run_request& request) {
    const auto& l = job.layout;
    if (!(request.learning_rate > 0.0) || !std::isfinite(request.learning_rate))
        throw input_error(fmt::format("--learning-rate must be a positive number, found {}",
                                      request.learning_rate));
    const bool device = request.backend == runtime::backend_kind::cuda;
    auto decoder = device ? runtime::device_decoder_config_of(job.model)
                          : runtime::decoder_config_of(job.model);
    decoder.validate(l.tp());
    if (decoder.layers < static_cast<std::int64_t>(l.pp()) * l.vpp())
        throw input_error(fmt::format("model {}: {} layers cannot fill pp={} x vpp={} model "
                                      "chunks",
                                      decoder.name, decoder.layers, l.pp(), l.vpp()));
    if (!device)
        check_host_memory(job.model, l, request.numbers);
    // The executors cut the layers evenly over the model chunks (runtime::decoder_chunk_layers).
    if (job.partition != "even")
        throw input_error(fmt::format("--partition {}: wlbtune run cuts the layers evenly over "
                                      "the model chunks (even); other partitions are for the "
                                      "simulator",
                                      job.partition));
    const auto schedule = runtime::parse_schedule(job.schedule, l.vpp());
    auto costs = device ? cost_model(job.model, job.hardware, l)
                        : run_cost_model(job.model, job.hardware, l, request.numbers);
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

} // namespace wlb::tuner
