#include "reports/run_report.hpp"

#include "reports/perfetto.hpp"
#include "runtime/trace/trace.hpp"
#include "tuner/packing/pack_run.hpp"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace wlb::reports {
namespace {

std::string applied_text(const std::array<int, 4>& a) {
    std::string s;
    for (std::size_t p = 0; p < a.size(); ++p)
        if (a[p] > 0)
            s += fmt::format("{}{} {}", s.empty() ? "" : ", ",
                             tuner::to_string(static_cast<tuner::sharding_policy>(p)), a[p]);
    return s;
}

struct summary {
    std::size_t from = 0, count = 0;
    double measured = 0.0, predicted = 0.0;
    [[nodiscard]] double error() const noexcept {
        return measured > 0.0 ? (predicted - measured) / measured : 0.0;
    }
};

summary summarize(const std::vector<run_step_row>& rows) {
    summary s;
    s.from = run_summary_first_step(rows.size());
    for (std::size_t i = s.from; i < rows.size(); ++i) {
        s.measured += rows[i].measured.seconds;
        s.predicted += rows[i].predicted_seconds;
        ++s.count;
    }
    if (s.count > 0) {
        s.measured /= static_cast<double>(s.count);
        s.predicted /= static_cast<double>(s.count);
    }
    return s;
}

} // namespace

run_context run_context_of(const tuner::job_spec& job, const tuner::prepared_run& run,
                           std::string_view backend, runtime::precision numbers,
                           const std::string& launcher, const std::string& trace_dir) {
    run_context c;
    c.backend = std::string(backend);
    c.precision = std::string(runtime::to_string(numbers));
    if (backend.starts_with("cuda")) {
        c.precision = "bf16, fp32 accumulation and master weights";
        c.trace_timing = "measured, each operation on its GPU stream (CUDA events)";
    }
    if (backend == "cuda-emulated") {
        c.seconds_kind = "emulated";
        c.seconds_note = "seconds are emulated: every rank ran alone on one GPU and its device "
                         "times were measured; a step is the slowest rank on virtual clocks (a "
                         "collective ends at its last arrival plus its transfer time)";
        c.trace_timing = "emulated, measured per-rank device times on virtual clocks";
    }
    c.job_layout = job.layout;
    c.launcher = launcher;
    c.model = run.decoder;
    c.data = run.data;
    c.context_tokens = job.context_tokens;
    c.packing = tuner::describe(job.packing);
    c.packing_json = tuner::to_json(job.packing);
    c.sharding = job.sharding.value_or(tuner::sharding_spec{});
    c.schedule = run.schedule.describe(job.layout.pp(), job.layout.vpp());
    c.hardware = run.costs.hardware().name;
    c.trace_dir = trace_dir;
    c.inputs = run.inputs;
    return c;
}

run_step_row make_run_step_row(const runtime::step_record& measured,
                               const runtime::training_step& step, double predicted_seconds,
                               const std::array<int, 4>& applied) {
    run_step_row row;
    row.measured = measured;
    row.predicted_seconds = predicted_seconds;
    row.applied = applied;
    for (const auto& r : step.batch.replicas) {
        row.micro_batches = std::max(row.micro_batches, static_cast<int>(r.micro_batches.size()));
        for (const auto& mb : r.micro_batches) {
            row.tokens += mb.tokens();
            row.documents += static_cast<std::int64_t>(mb.docs.size());
        }
    }
    return row;
}

std::size_t run_summary_first_step(std::size_t steps) noexcept {
    return steps >= 2 ? 1 : 0;
}

std::string run_header_text(const run_context& c) {
    std::string s;
    s += fmt::format("wlbtune run: backend {} ({}), layout {} (order {}, {} rank{}, launcher {})\n",
                     c.backend, c.precision, c.job_layout.spec(), c.job_layout.order_string(),
                     c.job_layout.world_size(), c.job_layout.world_size() == 1 ? "" : "s",
                     c.launcher);
    s += fmt::format("  model     {}: vocab {}, hidden {}, {} heads, ffn {}, {} layers ({} "
                     "parameters)\n",
                     c.model.name, c.model.vocab, c.model.hidden, c.model.heads, c.model.ffn,
                     c.model.layers, runtime::decoder_parameter_count(c.model));
    s += fmt::format("  data      {}\n", c.data);
    s += fmt::format("  packing   {}\n", c.packing);
    s += fmt::format("  sharding  {}\n", tuner::to_string(c.sharding.policy));
    s += fmt::format("  schedule  {}\n", c.schedule);
    s += fmt::format("  predicted by the simulator with hardware {}\n\n", c.hardware);
    return s;
}

std::string run_step_text(const run_step_row& r, bool first, std::string_view seconds_kind) {
    std::string s;
    if (first)
        s += fmt::format("{:>5} {:>4} {:>8} {:>5} {:>10} {:>12} {:>13} {:>7}  {}\n", "step", "mbs",
                         "tokens", "docs", "loss", fmt::format("{} s", seconds_kind), "predicted s",
                         "error", "sharding applied");
    const double err = r.measured.seconds > 0.0
                           ? (r.predicted_seconds - r.measured.seconds) / r.measured.seconds
                           : 0.0;
    s += fmt::format("{:>5} {:>4} {:>8} {:>5} {:>10.6f} {:>12.4f} {:>13.4f} {:>+6.1f}%  {}\n",
                     r.measured.step, r.micro_batches, r.tokens, r.documents, r.measured.loss,
                     r.measured.seconds, r.predicted_seconds, 100.0 * err, applied_text(r.applied));
    return s;
}

std::string run_summary_text(const run_context& c, const std::vector<run_step_row>& rows,
                             std::int64_t trace_events) {
    const auto m = summarize(rows);
    std::string s = "\n";
    if (m.count > 0)
        s += fmt::format("mean step time over steps {}..{}{}: {} {:.4f} s, predicted "
                         "(simulated, {}) {:.4f} s, prediction error {:+.1f}%\n",
                         rows[m.from].measured.step, rows.back().measured.step,
                         m.from > 0 ? " (step 0 warms up)" : "", c.seconds_kind, m.measured,
                         c.hardware, m.predicted, 100.0 * m.error());
    if (!rows.empty())
        s += fmt::format("loss: {:.6f} at step {} -> {:.6f} at step {}\n",
                         rows.front().measured.loss, rows.front().measured.step,
                         rows.back().measured.loss, rows.back().measured.step);
    if (!c.trace_dir.empty())
        s += fmt::format("trace directory (wlbtune.trace/1, {}): {} ({} events)\n", c.trace_timing,
                         c.trace_dir, trace_events);
    return s;
}

std::string run_capture_text(const profiler::run_capture_summary& c) {
    return fmt::format("CUPTI capture (kernel level, {}): {} ({} events, {} records dropped{})\n",
                       c.source, c.dir, c.events, c.dropped,
                       c.warnings.empty() ? "" : "; " + c.warnings.front());
}

nlohmann::json run_json(const run_context& c, const std::vector<run_step_row>& rows,
                        std::int64_t trace_events) {
    auto j = wlb::report_header(run_schema, c.inputs);
    j["note"] = c.seconds_note + "; predicted_seconds are simulated by the cost model";
    j["backend"] = c.backend;
    j["precision"] = c.precision;
    j["layout"] = {{"spec", c.job_layout.spec()},
                   {"order", c.job_layout.order_string()},
                   {"world_size", c.job_layout.world_size()}};
    j["launcher"] = c.launcher;
    j["model"] = runtime::to_json(c.model);
    j["data"] = c.data;
    j["context_tokens"] = c.context_tokens;
    j["packing"] = c.packing_json;
    j["sharding"] = tuner::to_json(c.sharding);
    j["schedule"] = c.schedule;
    j["hardware"] = c.hardware;
    auto& steps = j["steps"] = nlohmann::json::array();
    for (const auto& r : rows) {
        nlohmann::json applied = nlohmann::json::object();
        for (std::size_t p = 0; p < r.applied.size(); ++p)
            if (r.applied[p] > 0)
                applied[std::string(tuner::to_string(static_cast<tuner::sharding_policy>(p)))] =
                    r.applied[p];
        steps.push_back({{"step", r.measured.step},
                         {"micro_batches", r.micro_batches},
                         {"tokens", r.tokens},
                         {"documents", r.documents},
                         {"labelled_tokens", r.measured.labelled_tokens},
                         {"loss", r.measured.loss},
                         {"seconds", r.measured.seconds},
                         {"predicted_seconds", r.predicted_seconds},
                         {"sharding_applied", applied}});
    }
    const auto m = summarize(rows);
    j["summary"] = {{"from_step", m.count > 0 ? rows[m.from].measured.step : 0},
                    {"steps", m.count},
                    {"mean_seconds", m.measured},
                    {"mean_predicted_seconds", m.predicted},
                    {"prediction_error", m.error()}};
    if (!c.trace_dir.empty())
        j["trace"] = {{"dir", c.trace_dir}, {"events", trace_events}};
    return j;
}

run_report::run_report(const command_output& out, run_context context,
                       const tuner::prepared_run& run, bool main_rank)
    : m_out(out), m_context(std::move(context)), m_run(run), m_main(main_rank) {
    if (m_main)
        m_out.text(run_header_text(m_context));
}

run_report::run_report(const command_output& out, const tuner::job_spec& job,
                       const tuner::run_session& session, const tuner::run_request& request)
    : run_report(out,
                 run_context_of(job, session.run(), session.backend_name(), request.numbers,
                                session.launcher(), request.trace_dir),
                 session.run(), session.main_rank()) {}

void run_report::step(std::size_t i, const runtime::step_record& measured) {
    m_rows.push_back(make_run_step_row(measured, m_run.batches.steps[i], m_run.predicted_seconds[i],
                                       m_run.batches.applied[i]));
    if (m_main)
        m_out.text(run_step_text(m_rows.back(), i == 0, m_context.seconds_kind));
}

void run_report::finish(const runtime::run_result& result, const std::string& captured,
                        const std::string& perfetto) const {
    if (!m_main)
        return;
    const auto& c = m_context;
    if (!perfetto.empty())
        write_perfetto(runtime::trace_reader(c.trace_dir).read_all(), perfetto,
                       c.seconds_kind + " (" + c.backend + ", " + c.trace_timing + ")");
    m_out.json(run_json(c, m_rows, result.trace_events));
    m_out.text(run_summary_text(c, m_rows, result.trace_events) + captured +
               perfetto_output_note(perfetto, c.seconds_kind));
}

} // namespace wlb::reports
