#include "tuner/job/simulate_data_job.hpp"

#include "base/error.hpp"
#include "runtime/trace/sharded_batch_io.hpp"

#include <algorithm>
#include <fmt/format.h>

namespace wlb::tuner {

simulation_setup simulation_setup_of(const job_spec& job, const simulate_request& request) {
    simulation_setup s;
    s.plan = job.plan();
    s.plan.bucket_params = request.bucket_params;
    s.plan.overlap_grad_reduce = request.overlap_grad_reduce;
    for (const auto& spec : request.faults) {
        s.faults.push_back(runtime::parse_fault(spec));
        runtime::validate_fault(s.faults.back(), job.layout);
    }
    return s;
}

std::vector<candidate> simulation_candidates(const job_spec& job, const simulate_request& request) {
    const sharding_spec sharding = job.sharding.value_or(sharding_spec{});
    std::vector<candidate> out;
    if (request.compare)
        out = comparison_candidates(request.knobs, sharding, job.layout);
    else
        out.push_back({job.packing, sharding, "chosen", true});
    if (!job.config_path.empty()) {
        std::erase_if(out, [](const candidate& c) { return c.chosen && c.role == "chosen"; });
        for (auto& c : out)
            if (c.chosen) {
                c.role.resize(c.role.size() - std::string_view(", chosen").size());
                c.chosen = false;
            }
        out.push_back({job.packing, sharding, "tuned, chosen", true});
    }
    return out;
}

simulate_data_outcome simulate_data_job(const job_spec& job, const simulate_request& request) {
    simulate_data_outcome out;
    const auto costs = job.costs();
    out.setup = simulation_setup_of(job, request);
    // With a tuned config: by default the steps the tuner simulated.
    const std::int64_t steps = request.steps.value_or(job.tuned_steps > 0 ? job.tuned_steps : 64);
    if (steps < 1)
        throw input_error(fmt::format("--steps must be >= 1 with --data, found {}", steps));
    // Every input is checked before the documents are read.
    out.candidates = simulation_candidates(job, request);
    out.inputs = job.inputs();
    auto stream = job.open_stream();
    int window = 1;
    for (const auto& c : out.candidates)
        window = std::max(window, c.packing.window);
    out.documents =
        materialize_documents(stream, tokens_for_steps(steps, job.packing.step_tokens(), window));

    out.results.reserve(out.candidates.size());
    for (std::size_t i = 0; i < out.candidates.size(); ++i) {
        const auto& c = out.candidates[i];
        if (c.chosen)
            out.chosen = i;
        evaluation_config e;
        e.packing = c.packing;
        e.sharding = c.sharding;
        e.steps = steps;
        e.plan = out.setup.plan;
        e.faults = out.setup.faults;
        e.keep_trace = c.chosen && request.keep_trace;
        if (request.progress) {
            const auto label =
                out.candidates.size() > 1
                    ? fmt::format("simulating {} ({}/{})",
                                  describe_candidate(c.packing, c.sharding), i + 1,
                                  out.candidates.size())
                    : fmt::format("simulating {}", describe_candidate(c.packing, c.sharding));
            e.progress = [&request, label](std::int64_t done, std::int64_t total) {
                request.progress(label, done, total);
            };
        }
        out.results.push_back(evaluate(costs, out.documents, e));
    }
    return out;
}

simulate_batch_outcome simulate_batch_job(const job_spec& job, const std::string& batch_path,
                                          const simulate_request& request) {
    simulate_batch_outcome out;
    const auto costs = job.costs();
    out.setup = simulation_setup_of(job, request);
    auto steps = runtime::read_sharded_batch(batch_path);
    const std::int64_t limit = request.steps.value_or(0);
    if (limit < 0)
        throw input_error(fmt::format("--steps must be >= 0, found {}", limit));
    if (limit > 0 && static_cast<std::size_t>(limit) < steps.size())
        steps.resize(static_cast<std::size_t>(limit));
    simulate_job_options o;
    o.plan = out.setup.plan;
    o.faults = out.setup.faults;
    o.keep_trace = request.keep_trace;
    out.result = simulate_job(costs, steps, o);
    out.inputs.push_back(wlb::identify_file(batch_path));
    return out;
}

} // namespace wlb::tuner
