// The job options, written once for every command that takes them (pack, simulate, run, tune):
// the job the cost model predicts (--model, --hardware, --layout, --order), the documents
// (--data) and their stream (--context, --context-policy, --shuffle), the packing policy and its
// knobs, CP sharding, the pipeline schedule and stage partition, and --config (a tuned config in
// place of all of them but --data). They fill a tuner::job_options; tuner::resolve_job turns it
// into the job (the one place that decides between --config and the options).
//
// Use (in a register_<name>()):
//   auto o = std::make_shared<my_options>();     // holds a job_option_set `job`
//   o->job.values.model = "tiny";                // the command's own defaults, before adding
//   o->job.add(*sub, job_group::model | job_group::data | ..., "-p,--packing");
// and in run_<name>():
//   const auto job = o.job.resolve();            // after parsing: tuner::resolve_job
#pragma once

#include "tuner/spec/job_spec.hpp"

#include <CLI/CLI.hpp>
#include <string>
#include <utility>
#include <vector>

namespace wlb::cli {

/// Groups of job options a command takes (a bit set).
namespace job_group {
inline constexpr unsigned model = 1;     ///< --model, --hardware, --layout, --order
inline constexpr unsigned data = 2;      ///< -d,--data
inline constexpr unsigned stream = 4;    ///< --context, --context-policy, --shuffle
inline constexpr unsigned packing = 8;   ///< the policy, --queues, --thresholds, --smax, ...
inline constexpr unsigned sharding = 16; ///< --sharding, --hybrid-threshold
/// --sharding with no default: sharding is an extra the command does only when asked (pack).
inline constexpr unsigned sharding_optional = 32;
inline constexpr unsigned schedule = 64; ///< --schedule, --partition
inline constexpr unsigned config = 128;  ///< --config, excluding what a tuned config sets
} // namespace job_group

class job_option_set {
public:
    tuner::job_options values;

    /// Adds the groups' options in a fixed order with the defaults in `values`; the packing
    /// policy under `packing_names` ("-p,--policy" in pack, "-p,--packing" in run, "--packing"
    /// in simulate). With job_group::config, --config excludes every job option but --data.
    void add(CLI::App& sub, unsigned groups, const std::string& packing_names = "--packing",
             const std::string& config_help = "");
    /// Options other than --config that a tuned config replaces (for a command's own excludes).
    [[nodiscard]] const std::vector<CLI::Option*>& tuned_away() const noexcept {
        return m_tuned_away;
    }
    /// The options added for `groups` (--data and --config included when asked for).
    [[nodiscard]] std::vector<CLI::Option*> options_of(unsigned groups) const;
    [[nodiscard]] CLI::Option* config_option() const noexcept { return m_config; }
    [[nodiscard]] CLI::Option* data_option() const noexcept { return m_data; }
    /// Marks an option of the command's own (--schedule in run) as one a tuned config sets.
    void also_tuned_away(CLI::Option* option);
    /// After parsing: the job (tuner::resolve_job), --data given or not as the user said.
    [[nodiscard]] tuner::job_spec resolve();

private:
    std::vector<std::pair<unsigned, CLI::Option*>> m_added; ///< (its group, the option)
    std::vector<CLI::Option*> m_tuned_away;
    CLI::Option* m_config = nullptr;
    CLI::Option* m_data = nullptr;
};

} // namespace wlb::cli
