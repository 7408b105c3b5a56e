#include "tuner/spec/job_spec.hpp"

#include "base/error.hpp"
#include "base/token_count.hpp"
#include "runtime/parallel/pipeline_schedule.hpp"
#include "tuner/data/open_document_source.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <string_view>
#include <utility>

namespace wlb::tuner {

cost_model job_spec::costs(const cost_options& options) const {
    return {model, hardware, layout, options};
}

stream_options job_spec::stream() const {
    stream_options so;
    so.context_tokens = context_tokens;
    so.policy = data.policy;
    so.shuffle_seed = data.shuffle_seed;
    return so;
}

document_stream job_spec::open_stream() const {
    return document_stream(open_document_source(data.source), stream());
}

runtime::plan_options job_spec::plan() const {
    runtime::plan_options p;
    p.schedule = runtime::parse_schedule(schedule, layout.vpp());
    p.partition =
        runtime::make_stage_partition(partition, model.layers, layout.pp() * layout.vpp());
    return p;
}

std::vector<wlb::input_identity> job_spec::inputs() const {
    auto out = source_inputs(parse_source_spec(data.source));
    if (!config_path.empty())
        out.push_back(wlb::identify_file(config_path));
    return out;
}

job_spec job_of(const tuned_config& c, const std::string& path) {
    job_spec j;
    try {
        j.layout = runtime::layout::parse(c.layout_spec, c.layout_order);
    } catch (const input_error& e) {
        throw input_error(path, fmt::format("$.layout: {}", e.what()));
    }
    j.model = c.model;
    j.hardware = c.hardware;
    j.context_tokens = c.context_tokens;
    j.data.source = c.data.spec;
    j.data.policy = parse_context_policy(c.data.context_policy);
    j.data.shuffle_seed = c.data.shuffle_seed;
    validate(c.packing);
    // A plan's replicas are the layout's DP replicas: shard and simulate take them as such.
    if (c.packing.replicas != j.layout.dp())
        throw input_error(path, fmt::format("$.packing.replicas: {} differs from the layout's "
                                            "dp={} ($.layout.spec \"{}\")",
                                            c.packing.replicas, j.layout.dp(), c.layout_spec));
    j.packing = c.packing;
    j.sharding = c.sharding;
    j.schedule = c.schedule;
    j.partition = c.partition;
    j.config_path = path;
    j.tuned_steps = c.evaluated_steps;
    return j;
}

tuned_config tuned_config_of(const job_spec& job) {
    tuned_config c;
    c.layout_spec = job.layout.spec();
    c.layout_order = job.layout.order_string();
    c.context_tokens = job.context_tokens;
    c.model = job.model;
    c.hardware = job.hardware;
    c.data.spec = job.data.source;
    c.data.context_policy = std::string(to_string(job.data.policy));
    c.data.shuffle_seed = job.data.shuffle_seed;
    c.packing = job.packing;
    if (job.sharding)
        c.sharding = *job.sharding;
    c.schedule = job.schedule;
    c.partition = job.partition;
    return c;
}

namespace {

std::optional<sharding_spec> sharding_of(const job_options& o) {
    std::optional<sharding_spec> s;
    if (!o.sharding.empty()) {
        s.emplace();
        s->policy = parse_sharding_policy(o.sharding, "--sharding");
    }
    if (!o.hybrid_threshold.empty()) {
        // A threshold another policy would ignore is refused rather than dropped.
        if (!s || s->policy != sharding_policy::hybrid)
            throw input_error("--hybrid-threshold applies to --sharding hybrid only");
        s->hybrid_threshold_tokens =
            parse_hybrid_threshold(o.hybrid_threshold, "--hybrid-threshold");
    }
    return s;
}

job_spec job_of_options(const job_options& o) {
    job_spec j;
    j.context_tokens = wlb::parse_token_count(o.context, "--context");
    j.layout = runtime::layout::parse(o.layout, o.order);
    j.model = runtime::load_model(o.model);
    j.hardware = load_hardware(o.hardware);
    j.data.source = o.data;
    j.data.policy = parse_context_policy(o.context_policy);
    j.data.shuffle_seed = o.shuffle_seed;
    auto knobs = o.packing;
    knobs.context_tokens = j.context_tokens;
    j.packing = make_packing_config(knobs, j.layout); // validated
    j.sharding = sharding_of(o);
    j.schedule = o.schedule;
    j.partition = o.partition;
    return j;
}

// The model's shapes must split over the layout's TP degree (Megatron-LM's rule, and what
// run's decoder requires): every command that resolves a job refuses the same layouts.
void check_model_fits_layout(const job_spec& j, std::string_view where) {
    const int tp = j.layout.tp();
    if (j.model.heads % tp != 0 || j.model.ffn % tp != 0) {
        const auto what = fmt::format("model {} has {} heads and ffn {}: not divisible by "
                                      "tp={} (each TP rank holds whole heads)",
                                      j.model.name, j.model.heads, j.model.ffn, tp);
        if (where.empty())
            throw input_error(fmt::format("--layout {}: {}", j.layout.spec(), what));
        throw input_error(where, fmt::format("$.layout: {}", what));
    }
}

} // namespace

job_spec resolve_job(const job_options& o) {
    if (o.config.empty()) {
        auto j = job_of_options(o);
        check_model_fits_layout(j, "");
        return j;
    }
    if (!o.given_with_config.empty())
        throw usage_error(fmt::format("{} cannot be given with --config: a tuned config is "
                                      "applied whole (only --data may point it at other data); "
                                      "drop {} or --config",
                                      fmt::join(o.given_with_config, ", "),
                                      o.given_with_config.size() == 1 ? "it" : "them"));
    auto j = job_of(read_tuned_config(o.config), o.config);
    check_model_fits_layout(j, o.config);
    if (o.data_given)
        j.data.source = o.data;
    return j;
}

} // namespace wlb::tuner
