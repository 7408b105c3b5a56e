#include "tuner/job/pack_job.hpp"

#include "tuner/plan/plan_io.hpp"
#include "tuner/sharding/make_sharder.hpp"

#include <algorithm>
#include <memory>

namespace wlb::tuner {
namespace {

plan_header header_of(const job_spec& job, const cost_model& costs, const std::string& data,
                      const std::vector<wlb::input_identity>& inputs) {
    plan_header h;
    h.inputs = inputs;
    h.layout_spec = job.layout.spec();
    h.layout_order = job.layout.order_string();
    h.context_tokens = job.context_tokens;
    h.model = costs.model();
    h.hardware = costs.hardware();
    h.data = data;
    h.packing = job.packing;
    h.sharding = job.sharding;
    return h;
}

} // namespace

pack_outcome pack_job(const job_spec& job, const pack_request& request) {
    const auto costs = job.costs();
    const auto sharder = job.sharding ? make_sharder(*job.sharding, costs) : nullptr;
    shard_run_accumulator sharded;
    pack_outcome out;
    out.inputs = job.inputs();
    auto stream = job.open_stream();
    out.data = stream.describe();

    { // the job's packing, written to the plan
        std::unique_ptr<plan_writer> writer;
        if (!request.plan_path.empty())
            writer = std::make_unique<plan_writer>(request.plan_path,
                                                   header_of(job, costs, out.data, out.inputs));
        std::vector<runtime::document> waiting;
        step_sink sink;
        if (writer || sharder)
            sink = [&](const runtime::global_batch& b) {
                step_sharding decisions;
                if (sharder)
                    decisions = shard_step(b, *sharder, costs, sharded);
                if (writer)
                    writer->write(b, sharder ? &decisions : nullptr);
            };
        out.results.push_back(
            pack_stream(stream, job.packing, costs, request.steps, sink, &waiting));
        out.documents_read = stream.stats().documents;
        if (writer)
            writer->finish(waiting);
    }
    for (const auto policy : request.compare) {
        auto c = job.packing;
        c.policy = policy;
        if (c.policy == job.packing.policy)
            continue;
        out.results.push_back(pack_stream(stream, c, costs, request.steps));
        out.documents_read = std::max(out.documents_read, stream.stats().documents);
    }
    if (sharder)
        out.sharding = sharded.summary();
    return out;
}

} // namespace wlb::tuner
