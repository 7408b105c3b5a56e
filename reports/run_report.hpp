// The `run` reports: one line per step as it completes (measured step time and loss beside the
// simulator's prediction of the same step), a summary, and versioned JSON ("wlbtune.run/1").
// Measured and predicted figures are labelled as such.
#pragma once

#include "base/provenance.hpp"
#include "profiler/capture/run_capture.hpp"
#include "reports/output.hpp"
#include "runtime/parallel/layout.hpp"
#include "runtime/train/decoder.hpp"
#include "runtime/train/train_run.hpp"
#include "tuner/job/run_execute.hpp"
#include "tuner/job/run_job.hpp"
#include "tuner/sharding/sharding.hpp"
#include "tuner/spec/job_spec.hpp"

#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace wlb::reports {

inline constexpr std::string_view run_schema = "wlbtune.run/1";

struct run_context {
    std::string backend;   ///< "cpu", "cuda", "cuda-emulated"
    std::string precision; ///< "float", "double", "bf16 ..." (cuda)
    /// What a step's seconds are: "measured" (wall clock of the slowest rank) or "emulated"
    /// (virtual clocks of an emulated job: measured per-rank device times on one GPU).
    std::string seconds_kind = "measured";
    std::string seconds_note = "seconds are measured (wall clock of the slowest rank per step)";
    std::string trace_timing = "measured, host timers"; ///< how the trace's times were taken
    runtime::layout job_layout{1, 1, 1, 1};
    std::string launcher; ///< runtime::launch_info::launcher
    runtime::decoder_config model;
    std::string data; ///< the document stream's description
    std::int64_t context_tokens = 0;
    std::string packing;         ///< tuner::describe(packing_config)
    nlohmann::json packing_json; ///< tuner::to_json(packing_config)
    tuner::sharding_spec sharding;
    std::string schedule;  ///< schedule_options::describe
    std::string hardware;  ///< the cost model's hardware (predictions)
    std::string trace_dir; ///< empty: none
    std::vector<wlb::input_identity> inputs;
};

/// The facts of a prepared run of `job` on `backend` (its name) in `numbers`.
[[nodiscard]] run_context run_context_of(const tuner::job_spec& job, const tuner::prepared_run& run,
                                         std::string_view backend, runtime::precision numbers,
                                         const std::string& launcher, const std::string& trace_dir);

/// One step: what was measured, what the simulator predicted, and what the step held.
struct run_step_row {
    runtime::step_record measured;
    double predicted_seconds = 0.0; ///< simulated
    std::int64_t tokens = 0;        ///< of the global batch
    std::int64_t documents = 0;
    int micro_batches = 0;        ///< per DP replica (the largest)
    std::array<int, 4> applied{}; ///< micro-batches laid out per sharding_policy
};

/// The row of a step: its measured record, its prediction, and what the step held.
[[nodiscard]] run_step_row make_run_step_row(const runtime::step_record& measured,
                                             const runtime::training_step& step,
                                             double predicted_seconds,
                                             const std::array<int, 4>& applied);

/// The run's facts, printed once before the first step.
[[nodiscard]] std::string run_header_text(const run_context& c);
/// The line of one step; the column header (seconds labelled `seconds_kind`) comes with the
/// first one.
[[nodiscard]] std::string run_step_text(const run_step_row& row, bool first,
                                        std::string_view seconds_kind = "measured");
/// Mean measured and predicted step time (steps after the first when there are several: the
/// first warms allocations up) and the prediction's error.
[[nodiscard]] std::string run_summary_text(const run_context& c,
                                           const std::vector<run_step_row>& rows,
                                           std::int64_t trace_events);
[[nodiscard]] nlohmann::json run_json(const run_context& c, const std::vector<run_step_row>& rows,
                                      std::int64_t trace_events);

/// One line on the CUPTI capture written beside a cuda run's trace.
[[nodiscard]] std::string run_capture_text(const profiler::run_capture_summary& c);

/// What `wlbtune run` prints and writes as the run goes: the header once constructed, each
/// step's line as it ends, then the Perfetto export, the JSON report, the summary. Only the main
/// rank (world rank 0) prints or writes; every rank keeps the rows.
class run_report {
public:
    run_report(const command_output& out, run_context context, const tuner::prepared_run& run,
               bool main_rank);
    /// The report of a started session of `job` (run_context_of its run, backend and launcher).
    run_report(const command_output& out, const tuner::job_spec& job,
               const tuner::run_session& session, const tuner::run_request& request);
    /// After step i, with its measured record.
    void step(std::size_t i, const runtime::step_record& measured);
    /// After the last step: `perfetto` (empty: none) exported from the run's trace directory,
    /// then the JSON report, the summary and `captured` (the CUPTI capture's line).
    void finish(const runtime::run_result& result, const std::string& captured,
                const std::string& perfetto) const;

private:
    const command_output& m_out;
    run_context m_context;
    const tuner::prepared_run& m_run;
    bool m_main;
    std::vector<run_step_row> m_rows;
};

/// The steps the summary averages over: all but the first when there are at least two.
[[nodiscard]] std::size_t run_summary_first_step(std::size_t steps) noexcept;

} // namespace wlb::reports
