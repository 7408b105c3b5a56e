#include "cli/job_options.hpp"

#include "base/token_count.hpp"
#include "cli/command.hpp"
#include "runtime/model/model_spec.hpp"
#include "tuner/cost/hardware.hpp"
#include "tuner/data/open_document_source.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace wlb::cli {

void job_option_set::add(CLI::App& sub, unsigned groups, const std::string& packing_names,
                         const std::string& config_help) {
    auto& v = values;
    unsigned group = 0; // of the options being added
    auto away = [&](CLI::Option* o) {
        m_tuned_away.push_back(o);
        m_added.emplace_back(group, o);
        return o;
    };
    if (groups & job_group::data) {
        m_data = sub.add_option("-d,--data", v.data,
                                std::string("Document source:\n") +
                                    std::string(tuner::source_spec_help()));
        m_added.emplace_back(job_group::data, m_data);
    }
    if (groups & job_group::model) {
        group = job_group::model;
        away(sub.add_option("-m,--model", v.model,
                            fmt::format("Model preset ({}) or a model JSON file",
                                        fmt::join(runtime::model_preset_names(), ", "))));
        away(sub.add_option("--hardware", v.hardware,
                            fmt::format("Hardware preset ({}) or a JSON file",
                                        fmt::join(tuner::hardware_preset_names(), ", "))));
        away(sub.add_option("-l,--layout", v.layout, "Parallel degrees tp=,cp=,pp=,dp=[,vpp=]"));
        away(sub.add_option("--order", v.order, "Axis order, innermost first"));
    }
    if (groups & job_group::stream) {
        group = job_group::stream;
        away(sub.add_option("-c,--context", v.context,
                            fmt::format("Sequence length C in tokens ({} = {})", v.context,
                                        wlb::parse_token_count(v.context, "--context"))));
        away(sub.add_option("--context-policy", v.context_policy,
                            "A document longer than the context: truncate or split")

                 ->check(CLI::IsMember({"truncate", "split"})));
        away(sub.add_option("--shuffle", v.shuffle_seed,
                            "Shuffle the dataloader order with this seed (default: stored order)")
                 ->check(non_negative()));
    }
    if (groups & job_group::packing) {
        // No range checks here: tuner::make_packing_config refuses a negative --queues or
        // --micro-batches and a --window below 1 with a message that names the option (exit 3).
        group = job_group::packing;
        auto& k = v.packing;
        away(sub.add_option(packing_names, k.policy,
                            "Packing policy: plain (Megatron fixed-length, documents cut at "
                            "boundaries), plain-whole (fixed-length, documents kept whole), "
                            "fixed-greedy (fixed-length, balanced over --window steps), varlen "
                            "(WLB-LLM Algorithm 1 without queues), wlb (with outlier-delay "
                            "queues), ffd (first-fit-decreasing, NeMo)"));
        away(sub.add_option("--queues", k.queues,
                            "wlb: number of outlier queues, thresholds placed by default at C/4 "
                            "(1), 3C/16,C/2 (2) or C/8,C/4,C/2 (3); ignored with --thresholds"));
        away(sub.add_option("--thresholds", k.thresholds,
                            "wlb: queue lower bounds L1<...<Ln in tokens, e.g. 24k,64k (a "
                            "document of length in [Li, Li+1) waits in queue i)"));
        away(sub.add_option("--smax", k.smax,
                            "varlen/wlb: most tokens per micro-batch, a multiple of the context "
                            "(1.5x) or a token count"));
        away(sub.add_option("--window", k.window,
                            "fixed-greedy: global batches per packing window"));
        away(sub.add_option("--micro-batches", k.micro_batches,
                            "Micro-batches per DP replica per step (0: the layout's pp, as "
                            "WLB-LLM)"));
        away(sub.add_option("--max-delay", k.max_delay,
                            "wlb: the longest a document may wait, in steps; a queued document "
                            "that waited this long is released and spread (0: no bound)"));
    }
    if (groups & (job_group::sharding | job_group::sharding_optional)) {
        const bool optional = (groups & job_group::sharding_optional) != 0;
        group = job_group::sharding | job_group::sharding_optional;
        auto* policy = sub.add_option(
            "-s,--sharding", v.sharding,
            optional ? "Also shard every micro-batch of the packing policy over the layout's CP "
                       "ranks with this policy (per-seq, per-doc, adaptive, hybrid), record in "
                       "the plan the layout applied and each rank's chunks, and print the "
                       "predicted CP imbalance"
                     : "CP sharding policy: per-seq, per-doc, adaptive (per micro-batch the "
                       "faster of the two), hybrid");
        away(policy);
        auto* threshold = sub.add_option(
            "--hybrid-threshold", v.hybrid_threshold,
            "--sharding hybrid only: documents of at least this many tokens are sharded per "
            "document (e.g. 16k); auto (the default) picks it per micro-batch");
        if (!optional)
            threshold->default_str("auto");
        away(threshold);
    }
    if (groups & job_group::schedule) {
        group = job_group::schedule;
        away(sub.add_option("--schedule", v.schedule,
                            "Pipeline schedule: 1f1b, interleaved (Megatron), llama3:N (N "
                            "consecutive micro-batches per model chunk), auto (interleaved when "
                            "vpp > 1)"));
        away(sub.add_option("--partition", v.partition,
                            "Layers per model chunk: even, llama3 (first and last one fewer) or "
                            "a list \"7,8,8,7\""));
    }
    if (groups & job_group::config) {
        m_config = sub.add_option(
            "--config", v.config,
            config_help.empty()
                ? std::string("Apply a tuned config (wlbtune.config/1 from wlbtune tune) whole: "
                              "its layout, model, hardware, context, data order, packing, "
                              "sharding, schedule and partition; --data may point it at other "
                              "data")
                : config_help);
        for (auto* o : m_tuned_away)
            m_config->excludes(o);
        m_added.emplace_back(job_group::config, m_config);
    }
}

std::vector<CLI::Option*> job_option_set::options_of(unsigned groups) const {
    std::vector<CLI::Option*> out;
    for (const auto& [group, option] : m_added)
        if (group & groups)
            out.push_back(option);
    return out;
}

void job_option_set::also_tuned_away(CLI::Option* option) {
    m_tuned_away.push_back(option);
    if (m_config != nullptr)
        m_config->excludes(option);
}

tuner::job_spec job_option_set::resolve() {
    values.data_given = m_data != nullptr && m_data->count() > 0;
    values.given_with_config.clear();
    if (!values.config.empty())
        for (const auto* o : m_tuned_away)
            if (o->count() > 0)
                values.given_with_config.push_back(o->get_name());
    return tuner::resolve_job(values);
}

} // namespace wlb::cli
