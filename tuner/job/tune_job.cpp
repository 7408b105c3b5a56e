#include "tuner/job/tune_job.hpp"

#include "base/error.hpp"
#include "tuner/data/open_document_source.hpp"
#include "tuner/search/tuned_config_report.hpp"

#include <cmath>
#include <fmt/format.h>

namespace wlb::tuner {

tune_outcome tune_job(const job_spec& job, tune_request request) {
    const auto costs = job.costs();
    const auto& layout = costs.layout();
    auto& options = request.options;
    auto& c = options.constraints;
    if (options.max_delay < 0)
        throw input_error(fmt::format("--max-delay must be >= 0, found {}", options.max_delay));
    if (options.max_delay > 0 && (c.max_delay_steps == 0 || c.max_delay_steps > options.max_delay))
        c.max_delay_steps = options.max_delay; // the bound wlb's queues keep holds for everyone
    if (!(c.max_mean_delay >= 0.0) || !std::isfinite(c.max_mean_delay))
        throw input_error(fmt::format("--max-mean-delay must be >= 0, found {}", c.max_mean_delay));
    if (!(c.min_step_tokens_fraction > 0.0 && c.min_step_tokens_fraction <= 1.0))
        throw input_error(fmt::format("--min-step-tokens must be in (0, 1], found {}",
                                      c.min_step_tokens_fraction));
    const auto plan = job.plan();
    options.plan.schedule = plan.schedule;
    options.plan.partition = plan.partition;

    auto so = job.stream();
    so.max_documents = request.max_documents;
    const auto inputs = job.inputs();
    document_stream stream(open_document_source(job.data.source), so);
    const std::int64_t step_tokens =
        static_cast<std::int64_t>(layout.dp()) * layout.pp() * job.context_tokens;
    tune_outcome out;
    out.documents =
        materialize_documents(stream, tokens_for_steps(options.max_sample_steps, step_tokens, 8));
    out.result = tune(costs, job.context_tokens, out.documents, options);

    auto& config = out.config;
    config = tuned_config_of(job);
    config.packing = out.result.winner.config.packing;
    config.sharding = out.result.winner.config.sharding;
    config.data.description = out.documents.description;
    config.data.documents = static_cast<std::int64_t>(out.documents.documents.size());
    config.data.tokens = out.documents.tokens;
    config.data.inputs = inputs;
    config.evaluated_steps = out.result.sample_steps;
    out.json = tuned_config_json(config, out.result, options);
    return out;
}

} // namespace wlb::tuner
