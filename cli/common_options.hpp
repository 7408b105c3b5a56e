// The command-line options that several commands share, written once: the job the cost model
// predicts (--model, --hardware, --layout, --order: pack, simulate, tune), the document source
// (--data: pack, run, tune) and stream (--context, --context-policy, --shuffle: pack, run,
// simulate, tune), the packing policy and its knobs (pack, run, simulate) and CP sharding (pack,
// run, simulate), with what each group turns into. Options only one command has stay in that
// command's cmd_<name>.cpp.
//
// Use (in a register_<name>()):
//   auto o = std::make_shared<my_options>();   // holds job, stream, packing, sharding values
//   add_job_options(*sub, o->job);             // in the order the help lists them
//   add_stream_options(*sub, o->stream);
//   add_packing_options(*sub, o->packing, "-p,--packing");
//   add_sharding_options(*sub, o->sharding, sharding_use::always);
// and in run_<name>():
//   const auto tuned = read_tuned_config_option(o.config);
//   const auto costs = cost_model_from_options(o.job, tuned);
//   const auto context = context_from_options(o.stream, tuned);
//   const auto packing = packing_from_options(o.packing, context, costs.layout(), tuned);
//   const auto sharding = sharding_from_options(o.sharding, tuned);
//
// Each add_* returns the options it added (for excludes: --config, --batch). Every conversion
// takes the tuned config --config read (wlbtune.config/1), if any: given one, its values are
// used instead of the options (which the command's --config excludes).
#pragma once

#include "runtime/parallel/layout.hpp"
#include "tuner/cost/cost_model.hpp"
#include "tuner/data/document_stream.hpp"
#include "tuner/packing/packer.hpp"
#include "tuner/search/evaluate.hpp"
#include "tuner/search/tuned_config.hpp"
#include "tuner/sharding/sharding.hpp"

#include <CLI/CLI.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace wlb::cli {

/// Appends `more` to `options` (to gather the options another one excludes).
void append_options(std::vector<CLI::Option*>& options, const std::vector<CLI::Option*>& more);

/// The tuned config (wlbtune.config/1) at `path`, std::nullopt when `path` is empty (no
/// --config). Throws wlb::input_error naming the file on a bad one.
std::optional<tuner::tuned_config> read_tuned_config_option(const std::string& path);

/// --model, --hardware, --layout, --order: the job the cost model predicts.
struct job_option_values {
    std::string model = "7b";
    std::string hardware = "h100-sxm";
    std::string layout = "tp=8,cp=2,pp=4,dp=1";
    std::string order = std::string(runtime::layout::default_order);
};

/// Adds -m,--model, --hardware, -l,--layout and --order with the defaults in `v`.
std::vector<CLI::Option*> add_job_options(CLI::App& sub, job_option_values& v);

/// The cost model of the tuned config's model, hardware and layout, else of the options'.
/// Throws wlb::input_error on a bad layout or an unknown or malformed model or hardware.
tuner::cost_model
cost_model_from_options(const job_option_values& v,
                        const std::optional<tuner::tuned_config>& tuned = std::nullopt);

/// Adds -d,--data, the document source (docs/data.md), defaulting to `data`.
CLI::Option* add_data_option(CLI::App& sub, std::string& data);

/// --context, --context-policy, --shuffle.
struct stream_option_values {
    std::string context = "128k"; ///< also the default the help shows ("128k = 131072")
    std::string context_policy = "truncate";
    std::optional<std::uint64_t> shuffle_seed;
};

/// Adds -c,--context, --context-policy and --shuffle with the defaults in `v`.
std::vector<CLI::Option*> add_stream_options(CLI::App& sub, stream_option_values& v);

/// The context in tokens: the tuned config's, else --context parsed. Throws wlb::input_error
/// naming --context.
std::int64_t context_from_options(const stream_option_values& v,
                                  const std::optional<tuner::tuned_config>& tuned = std::nullopt);

/// The document stream the options describe (the tuned config's context policy and shuffle
/// seed when given) over `context_tokens` tokens of context.
tuner::stream_options
stream_from_options(const stream_option_values& v, std::int64_t context_tokens,
                    const std::optional<tuner::tuned_config>& tuned = std::nullopt);

/// The packing policy and its knobs (--queues, --thresholds, --smax, --window,
/// --micro-batches), as tuner::packing_knobs less the context.
struct packing_option_values {
    std::string policy = "wlb";
    int queues = 2;
    std::string thresholds;
    std::string smax = "1.5x";
    int window = 1;
    int micro_batches = 0;
};

/// Adds the packing policy option under `policy_names` (pack: "-p,--policy", run:
/// "-p,--packing", simulate: "--packing"), then --queues, --thresholds, --smax, --window and
/// --micro-batches, with the defaults in `v`.
std::vector<CLI::Option*> add_packing_options(CLI::App& sub, packing_option_values& v,
                                              const std::string& policy_names);

/// The knobs for tuner::make_packing_config and tuner::comparison_candidates.
tuner::packing_knobs knobs_from_options(const packing_option_values& v,
                                        std::int64_t context_tokens);

/// The tuned config's packing, else tuner::make_packing_config of the options for `l`; either
/// validated. Throws wlb::input_error naming the option (--smax, --thresholds, ...).
tuner::packing_config
packing_from_options(const packing_option_values& v, std::int64_t context_tokens,
                     const runtime::layout& l,
                     const std::optional<tuner::tuned_config>& tuned = std::nullopt);

/// How a command takes CP sharding.
enum class sharding_use {
    always,   ///< every micro-batch is sharded; --sharding defaults to adaptive (run, simulate)
    optional, ///< sharding is an extra, done only with --sharding (pack)
};

/// --sharding and --hybrid-threshold.
struct sharding_option_values {
    std::string policy = "adaptive"; ///< empty: no sharding (sharding_use::optional)
    std::string hybrid_threshold;    ///< empty: not given (auto)
};

/// Adds --sharding under `policy_names` and --hybrid-threshold. With sharding_use::optional
/// --sharding has no default (set v.policy empty) and the help says what the extra does.
std::vector<CLI::Option*> add_sharding_options(CLI::App& sub, sharding_option_values& v,
                                               sharding_use use,
                                               const std::string& policy_names = "--sharding");

/// The tuned config's sharding, else the options' (std::nullopt when v.policy is empty).
/// Throws wlb::input_error on an unknown policy (naming --sharding), a bad threshold, or
/// --hybrid-threshold with a policy other than hybrid.
std::optional<tuner::sharding_spec>
sharding_from_options(const sharding_option_values& v,
                      const std::optional<tuner::tuned_config>& tuned = std::nullopt);

} // namespace wlb::cli
