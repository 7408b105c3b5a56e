// The `simulate` reports: versioned JSON ("wlbtune.simulate/1") and terminal tables. Every
// figure is simulated (the cost model's prediction), and both say so.
//
// Three shapes: steps read from a sharded batch (--batch), one candidate packed and sharded
// from documents (--data: the same step figures plus the packing and CP sharding measures),
// and a comparison of candidates on the same documents (--compare: predicted step time and
// speedup over the baseline, plain + per-seq).
#pragma once

#include "base/provenance.hpp"
#include "reports/output.hpp"
#include "tuner/job/simulate_data_job.hpp"
#include "tuner/search/compare_set.hpp"
#include "tuner/search/evaluate.hpp"
#include "tuner/search/simulate_job.hpp"
#include "tuner/spec/job_spec.hpp"

#include <nlohmann/json_fwd.hpp>
#include <span>
#include <string>
#include <string_view>

namespace wlb::reports {

inline constexpr std::string_view simulate_schema = "wlbtune.simulate/1";

struct simulate_context {
    std::string model;
    std::string hardware;
    std::string schedule;
    std::string partition;
    std::vector<std::string> faults;
    std::vector<wlb::input_identity> inputs;
    /// --data only: the document set every candidate ran on.
    const tuner::document_set* documents = nullptr;
};

/// One candidate of a comparison and its role (tuner::candidate::role).
struct compared {
    const tuner::evaluation* result = nullptr;
    std::string role;
};

/// --batch: the steps of a sharded batch.
nlohmann::json simulate_json(const tuner::cost_model& costs, const simulate_context& context,
                             const tuner::simulate_job_result& result);
std::string simulate_text(const tuner::cost_model& costs, const simulate_context& context,
                          const tuner::simulate_job_result& result);

/// --data: one candidate's steps, with "candidate", "data", "packing" and "sharding" objects;
/// with a non-empty `comparison` (its first entry is the baseline) also "compare": one object
/// per candidate with its predicted mean step time and speedup over the baseline.
nlohmann::json simulate_json(const tuner::cost_model& costs, const simulate_context& context,
                             const tuner::evaluation& chosen,
                             std::span<const compared> comparison = {});
std::string simulate_text(const tuner::cost_model& costs, const simulate_context& context,
                          const tuner::evaluation& chosen);
/// The comparison table: candidate, role, predicted mean step time, speedup over the first
/// entry, packing imbalance and delay, CP imbalance, bubble.
std::string compare_text(const tuner::cost_model& costs, const simulate_context& context,
                         std::span<const compared> comparison);

/// The context of a simulation of `job` with `setup` over `inputs` (and, with --data, the
/// documents every candidate ran on).
simulate_context simulate_context_of(const tuner::job_spec& job,
                                     const tuner::simulation_setup& setup,
                                     std::vector<wlb::input_identity> inputs,
                                     const tuner::document_set* documents = nullptr);

/// The comparison of a --data simulation (empty without --compare).
std::vector<compared> comparison_of(const tuner::simulate_data_outcome& outcome, bool compare);

/// Writes a simulated trace as a Perfetto file (`perfetto`, when not empty) and as a
/// wlbtune.trace/1 directory (`trace_dir`, when not empty) whose manifest names `inputs` and,
/// when given, the model the cost model simulated (so `calibrate --from-trace` can read it).
void write_simulated_traces(const runtime::trace& t, const std::string& perfetto,
                            const std::string& trace_dir,
                            const std::vector<wlb::input_identity>& inputs,
                            const runtime::model_spec* model = nullptr);
/// The lines naming the traces written ("" when none).
std::string simulated_trace_notes(const std::string& perfetto, const std::string& trace_dir);

/// `wlbtune simulate --batch`'s reports: simulate_json / simulate_text of the outcome, the text
/// followed by the notes of the traces written.
nlohmann::json simulate_batch_json(const tuner::job_spec& job,
                                   const tuner::simulate_batch_outcome& outcome);
std::string simulate_batch_text(const tuner::job_spec& job,
                                const tuner::simulate_batch_outcome& outcome,
                                const std::string& perfetto, const std::string& trace_dir);
/// `wlbtune simulate --data`'s reports: the chosen candidate's simulate_json (with the
/// comparison when `compare`), and compare_text or simulate_text followed by the notes of the
/// traces written (of the chosen candidate).
nlohmann::json simulate_data_json(const tuner::job_spec& job,
                                  const tuner::simulate_data_outcome& outcome, bool compare);
std::string simulate_data_text(const tuner::job_spec& job,
                               const tuner::simulate_data_outcome& outcome, bool compare,
                               const std::string& perfetto, const std::string& trace_dir);

/// Where `wlbtune simulate` writes besides its text and JSON (each empty: not written).
struct simulate_files {
    std::string perfetto;  ///< --trace
    std::string trace_dir; ///< --trace-dir
    std::string html;      ///< --html (a --data simulation with --compare)
};

/// Everything `wlbtune simulate` reports of an outcome, through `out`: the traces
/// (write_simulated_traces, with the job's model), the JSON report, the HTML page (--data only)
/// and the text with the notes of what was written.
void report_simulate_batch(const command_output& out, const tuner::job_spec& job,
                           const tuner::simulate_batch_outcome& outcome,
                           const simulate_files& files);
void report_simulate_data(const command_output& out, const tuner::job_spec& job,
                          const tuner::simulate_data_outcome& outcome, bool compare,
                          const simulate_files& files);

} // namespace wlb::reports
