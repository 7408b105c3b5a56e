#include "cli/common_options.hpp"

#include "base/error.hpp"
#include "base/token_count.hpp"
#include "runtime/model/model_spec.hpp"
#include "tuner/cost/hardware.hpp"
#include "tuner/data/open_document_source.hpp"

#include <fmt/format.h>
#include <utility>

namespace wlb::cli {

void append_options(std::vector<CLI::Option*>& options, const std::vector<CLI::Option*>& more) {
    options.insert(options.end(), more.begin(), more.end());
}

std::optional<tuner::tuned_config> read_tuned_config_option(const std::string& path) {
    if (path.empty())
        return std::nullopt;
    return tuner::read_tuned_config(path);
}

std::vector<CLI::Option*> add_job_options(CLI::App& sub, job_option_values& v) {
    return {
        sub.add_option("-m,--model", v.model,
                       "Model preset (550m, 7b, 30b, 70b, llama3-8b, llama3-70b, llama3-405b) or "
                       "a model JSON file")
            ->capture_default_str(),
        sub.add_option("--hardware", v.hardware, "Hardware preset (h100-sxm, h200) or a JSON file")
            ->capture_default_str(),
        sub.add_option("-l,--layout", v.layout, "Parallel degrees tp=,cp=,pp=,dp=[,vpp=]")
            ->capture_default_str(),
        sub.add_option("--order", v.order, "Axis order, innermost first")->capture_default_str(),
    };
}

tuner::cost_model cost_model_from_options(const job_option_values& v,
                                          const std::optional<tuner::tuned_config>& tuned) {
    if (tuned)
        return {tuned->model, tuned->hardware,
                runtime::layout::parse(tuned->layout_spec, tuned->layout_order)};
    auto layout = runtime::layout::parse(v.layout, v.order);
    auto model = runtime::load_model(v.model);
    return {std::move(model), tuner::load_hardware(v.hardware), std::move(layout)};
}

CLI::Option* add_data_option(CLI::App& sub, std::string& data) {
    return sub
        .add_option("-d,--data", data,
                    std::string("Document source:\n") + std::string(tuner::source_spec_help()))
        ->capture_default_str();
}

std::vector<CLI::Option*> add_stream_options(CLI::App& sub, stream_option_values& v) {
    return {
        sub.add_option("-c,--context", v.context,
                       fmt::format("Sequence length C in tokens ({} = {})", v.context,
                                   wlb::parse_token_count(v.context, "--context")))
            ->capture_default_str(),
        sub.add_option("--context-policy", v.context_policy,
                       "A document longer than the context: truncate or split")
            ->capture_default_str()
            ->check(CLI::IsMember({"truncate", "split"})),
        sub.add_option("--shuffle", v.shuffle_seed,
                       "Shuffle the dataloader order with this seed (default: stored order)"),
    };
}

std::int64_t context_from_options(const stream_option_values& v,
                                  const std::optional<tuner::tuned_config>& tuned) {
    return tuned ? tuned->context_tokens : wlb::parse_token_count(v.context, "--context");
}

tuner::stream_options stream_from_options(const stream_option_values& v,
                                          std::int64_t context_tokens,
                                          const std::optional<tuner::tuned_config>& tuned) {
    tuner::stream_options so;
    so.context_tokens = context_tokens;
    so.policy = tuner::parse_context_policy(tuned ? tuned->data.context_policy : v.context_policy);
    so.shuffle_seed = tuned ? tuned->data.shuffle_seed : v.shuffle_seed;
    return so;
}

std::vector<CLI::Option*> add_packing_options(CLI::App& sub, packing_option_values& v,
                                              const std::string& policy_names) {
    // No range checks here: tuner::make_packing_config refuses a negative --queues or
    // --micro-batches and a --window below 1 with a message that names the option (exit 3).
    return {
        sub.add_option(policy_names, v.policy,
                       "Packing policy: plain (Megatron fixed-length, documents cut at "
                       "boundaries), fixed-greedy (fixed-length, balanced over --window steps), "
                       "varlen (WLB-LLM Algorithm 1 without queues), wlb (with outlier-delay "
                       "queues), ffd (first-fit-decreasing, NeMo)")
            ->capture_default_str(),
        sub.add_option("--queues", v.queues,
                       "wlb: number of outlier queues, thresholds placed by default at C/4 (1), "
                       "3C/16,C/2 (2) or C/8,C/4,C/2 (3); ignored with --thresholds")
            ->capture_default_str(),
        sub.add_option("--thresholds", v.thresholds,
                       "wlb: queue lower bounds L1<...<Ln, e.g. 24k,64k (a document of length in "
                       "[Li, Li+1) waits in queue i)"),
        sub.add_option("--smax", v.smax,
                       "varlen/wlb: most tokens per micro-batch, a multiple of the context (1.5x) "
                       "or a token count")
            ->capture_default_str(),
        sub.add_option("--window", v.window, "fixed-greedy: global batches per packing window")
            ->capture_default_str(),
        sub.add_option("--micro-batches", v.micro_batches,
                       "Micro-batches per DP replica per step (0: the layout's pp, as WLB-LLM)")
            ->capture_default_str(),
    };
}

tuner::packing_knobs knobs_from_options(const packing_option_values& v,
                                        std::int64_t context_tokens) {
    return {.policy = v.policy,
            .context_tokens = context_tokens,
            .queues = v.queues,
            .thresholds = v.thresholds,
            .smax = v.smax,
            .window = v.window,
            .micro_batches = v.micro_batches};
}

tuner::packing_config packing_from_options(const packing_option_values& v,
                                           std::int64_t context_tokens, const runtime::layout& l,
                                           const std::optional<tuner::tuned_config>& tuned) {
    if (!tuned)
        return tuner::make_packing_config(knobs_from_options(v, context_tokens), l); // validated
    tuner::validate(tuned->packing);
    return tuned->packing;
}

std::vector<CLI::Option*> add_sharding_options(CLI::App& sub, sharding_option_values& v,
                                               sharding_use use, const std::string& policy_names) {
    if (use == sharding_use::optional)
        return {
            sub.add_option(policy_names, v.policy,
                           "Also shard every micro-batch of --policy over the layout's CP ranks "
                           "with this policy (per-seq, per-doc, adaptive, hybrid), record in the "
                           "plan the layout applied and each rank's chunks, and print the "
                           "predicted CP imbalance"),
            sub.add_option("--hybrid-threshold", v.hybrid_threshold,
                           "--sharding hybrid only: documents of at least this many tokens are "
                           "sharded per document (e.g. 16k); auto (the default) picks it per "
                           "micro-batch"),
        };
    return {
        sub.add_option(policy_names, v.policy,
                       "CP sharding policy: per-seq, per-doc, adaptive (per micro-batch the "
                       "faster of the two), hybrid")
            ->capture_default_str(),
        sub.add_option("--hybrid-threshold", v.hybrid_threshold,
                       "hybrid: documents of at least this many tokens are sharded per "
                       "document; auto picks it per micro-batch")
            ->default_str("auto"),
    };
}

std::optional<tuner::sharding_spec>
sharding_from_options(const sharding_option_values& v,
                      const std::optional<tuner::tuned_config>& tuned) {
    if (tuned)
        return tuned->sharding;
    std::optional<tuner::sharding_spec> s;
    if (!v.policy.empty()) {
        s.emplace();
        s->policy = tuner::parse_sharding_policy(v.policy, "--sharding");
    }
    if (!v.hybrid_threshold.empty()) {
        // A threshold another policy would ignore is refused rather than dropped.
        if (!s || s->policy != tuner::sharding_policy::hybrid)
            throw input_error("--hybrid-threshold applies to --sharding hybrid only");
        s->hybrid_threshold_tokens =
            tuner::parse_hybrid_threshold(v.hybrid_threshold, "--hybrid-threshold");
    }
    return s;
}

} // namespace wlb::cli
