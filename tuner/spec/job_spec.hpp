// The job every command works on (design.md section 4): layout, model, hardware, context, the
// data and its order, the packing, the CP sharding, the pipeline schedule and stage partition.
// A command resolves it once, from its options or from a tuned config (wlbtune.config/1, the job
// spec serialized with the tuner's predictions), and hands it to the library:
//
//   tuner::job_options o;               // what the command line said (cli/job_options.hpp)
//   const auto job = tuner::resolve_job(o);
//   const auto costs = job.costs();     // the cost model of model x hardware x layout
//   auto stream = job.open_stream();    // the documents in the job's order
//
// resolve_job is the one place that decides precedence: with a tuned config, the config's
// values; otherwise the options'. A tuned config is applied whole: the command line may only
// point it at other data (--data); every other job option conflicts with it (the command line
// refuses both at once, and resolve_job refuses what gets through).
#pragma once

#include "base/provenance.hpp"
#include "runtime/model/model_spec.hpp"
#include "runtime/parallel/layout.hpp"
#include "runtime/plan/step_plan.hpp"
#include "tuner/cost/cost_model.hpp"
#include "tuner/cost/hardware.hpp"
#include "tuner/data/document_stream.hpp"
#include "tuner/packing/packer.hpp"
#include "tuner/packing/packing_knobs.hpp"
#include "tuner/sharding/sharding.hpp"
#include "tuner/spec/tuned_config.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace wlb::tuner {

/// Where the documents come from and in which order.
struct data_spec {
    std::string source = "default"; ///< a document source spec (docs/data.md)
    context_policy policy = context_policy::truncate;
    std::optional<std::uint64_t> shuffle_seed; ///< nullopt: the stored order
};

struct job_spec {
    runtime::layout layout{1, 1, 1, 1};
    runtime::model_spec model;
    hardware_config hardware;
    std::int64_t context_tokens = 131072;
    data_spec data;
    packing_config packing;
    std::optional<sharding_spec> sharding; ///< nullopt: no CP sharding (pack without --sharding)
    std::string schedule = "auto";         ///< runtime::parse_schedule
    std::string partition = "even";        ///< runtime::make_stage_partition
    /// The tuned config the job was read from (empty: from the options) and the steps the tuner
    /// simulated from step 0 (0 without a tuned config).
    std::string config_path;
    std::int64_t tuned_steps = 0;

    /// The cost model of the job's model on its hardware over its layout.
    [[nodiscard]] cost_model costs(const cost_options& options = {}) const;
    /// The dataloader's stream options for the job's context.
    [[nodiscard]] stream_options stream() const;
    /// The job's documents in the job's order.
    [[nodiscard]] document_stream open_stream() const;
    /// The schedule and stage partition parsed for the layout and model; throws wlb::input_error
    /// naming --schedule or --partition.
    [[nodiscard]] runtime::plan_options plan() const;
    /// The files the job reads: the data source's, then the tuned config.
    [[nodiscard]] std::vector<wlb::input_identity> inputs() const;
};

/// The job options as a command line gives them; each holds the command's default unless given.
struct job_options {
    std::string config; ///< --config: a tuned config; empty: none
    std::string model = "7b";
    std::string hardware = "h100-sxm";
    std::string layout = "tp=8,cp=2,pp=4,dp=1";
    std::string order = std::string(runtime::layout::default_order);
    std::string data = "default";
    bool data_given = false; ///< --data was on the command line (it may redirect a tuned config)
    std::string context = "128k";
    std::string context_policy = "truncate";
    std::optional<std::uint64_t> shuffle_seed;
    packing_knobs packing; ///< its context_tokens is set from `context` by resolve_job
    /// --sharding: a policy, or empty for none; --hybrid-threshold: empty when not given.
    std::string sharding = "adaptive";
    std::string hybrid_threshold;
    std::string schedule = "auto";
    std::string partition = "even";
    /// Options other than --data that were given beside `config` (by their names, e.g.
    /// "--policy"): resolve_job refuses them.
    std::vector<std::string> given_with_config;
};

/// The job: the tuned config at o.config (its data redirected by o.data when given), else the
/// options, every value checked. Throws wlb::input_error naming the option or the config's file
/// and JSON path; wlb::usage_error for options given beside a tuned config.
job_spec resolve_job(const job_options& o);

/// The job a tuned config describes; `path` names it in errors and provenance.
job_spec job_of(const tuned_config& c, const std::string& path);

/// The reproducible part of a tuned config for `job` (layout, context, model, hardware, data,
/// packing, sharding, schedule, partition); the caller adds what the tuner read and simulated.
tuned_config tuned_config_of(const job_spec& job);

} // namespace wlb::tuner
