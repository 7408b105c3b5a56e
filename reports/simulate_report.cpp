#include "reports/simulate_report.hpp"

#include "base/provenance.hpp"
#include "reports/html/html_report.hpp"
#include "reports/perfetto.hpp"
#include "reports/shard_report.hpp"
#include "reports/table.hpp"
#include "runtime/trace/trace.hpp"
#include "tuner/cost/cost_model.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace wlb::reports {
namespace {

std::string ms(double seconds) {
    return fmt::format("{:.2f}", seconds * 1e3);
}
std::string pct(double fraction) {
    return fmt::format("{:.1f}%", fraction * 100);
}

double mean_bubble(std::span<const runtime::step_summary> steps) {
    double sum = 0.0;
    for (const auto& s : steps)
        sum += s.bubble_fraction;
    return steps.empty() ? 0.0 : sum / static_cast<double>(steps.size());
}

nlohmann::json steps_json(const tuner::cost_model& costs, const simulate_context& c,
                          std::span<const runtime::step_summary> steps_in, double total_seconds) {
    auto j = wlb::report_header(simulate_schema, c.inputs);
    j["simulated"] = true;
    j["note"] = "simulated: durations from the cost model, not measured";
    j["layout"] = {{"spec", costs.layout().spec()},
                   {"order", costs.layout().order_string()},
                   {"world_size", costs.layout().world_size()}};
    j["model"] = c.model;
    j["hardware"] = c.hardware;
    j["schedule"] = c.schedule;
    j["stage_partition"] = c.partition;
    j["faults"] = c.faults;
    j["total_seconds"] = total_seconds;
    j["mean_step_seconds"] =
        steps_in.empty() ? 0.0 : total_seconds / static_cast<double>(steps_in.size());
    auto& steps = j["steps"] = nlohmann::json::array();
    for (const auto& s : steps_in) {
        nlohmann::json cp = nlohmann::json::object();
        for (const auto& [k, v] : s.critical_path)
            cp[k] = v;
        auto slow = nlohmann::json::array();
        for (const auto& w : s.slowest)
            slow.push_back({{"rank", w.rank},
                            {"tp", w.where.tp},
                            {"cp", w.where.cp},
                            {"pp", w.where.pp},
                            {"dp", w.where.dp},
                            {"busy_seconds", w.busy_seconds},
                            {"attention_seconds", w.attention_seconds},
                            {"exposed_comm_seconds", w.exposed_comm_seconds},
                            {"idle_seconds", w.idle_seconds},
                            {"busy_over_mean", w.busy_over_mean},
                            {"why", w.why}});
        steps.push_back({{"step", s.step},
                         {"step_seconds", s.step_seconds},
                         {"bubble_fraction", s.bubble_fraction},
                         {"exposed_comm_fraction", s.exposed_comm_fraction},
                         {"compute_imbalance", s.compute_imbalance},
                         {"critical_path_seconds", cp},
                         {"slowest_ranks", slow}});
    }
    return j;
}

std::string header_text(const tuner::cost_model& costs, const simulate_context& c) {
    std::string out = fmt::format(
        "simulated step times (cost model, not measured): {} on {}, layout {} ({} ranks), {}, "
        "stage partition {}\n",
        c.model, c.hardware, costs.layout().spec(), costs.layout().world_size(), c.schedule,
        c.partition);
    if (!c.faults.empty()) {
        std::string f;
        for (const auto& x : c.faults)
            f += (f.empty() ? "" : ", ") + x;
        out += fmt::format("injected faults: {}\n", f);
    }
    if (c.documents)
        out += fmt::format("data: {} ({} documents, {} tokens read{})\n", c.documents->description,
                           c.documents->documents.size(), c.documents->tokens,
                           c.documents->complete ? ", the whole stream" : "");
    return out;
}

std::string steps_text(std::span<const runtime::step_summary> steps_in, double total_seconds) {
    std::string out = "\n";
    table steps({"step", "time (ms)", "bubble", "exposed comm", "imbalance", "crit: compute", "tp",
                 "cp", "pp", "dp"});
    for (const auto& s : steps_in) {
        std::vector<std::string> row = {std::to_string(s.step), ms(s.step_seconds),
                                        pct(s.bubble_fraction), pct(s.exposed_comm_fraction),
                                        fmt::format("{:.3f}", s.compute_imbalance)};
        for (const char* k : {"compute", "tp", "cp", "pp", "dp"})
            for (const auto& [name, v] : s.critical_path)
                if (name == k)
                    row.push_back(s.step_seconds > 0 ? pct(v / s.step_seconds) : "-");
        steps.add_row(std::move(row));
    }
    out += steps.render();
    out += fmt::format(
        "\nsimulated total {} ms over {} steps, mean {} ms per step\n", ms(total_seconds),
        steps_in.size(),
        ms(steps_in.empty() ? 0.0 : total_seconds / static_cast<double>(steps_in.size())));
    if (!steps_in.empty()) {
        // The slowest ranks of the slowest step.
        const auto* worst = &steps_in.front();
        for (const auto& s : steps_in)
            if (s.step_seconds > worst->step_seconds)
                worst = &s;
        out += fmt::format("\nslowest ranks in step {} (simulated; TP peers identical):\n",
                           worst->step);
        table slow({"rank", "tp cp pp dp", "busy (ms)", "attention", "x mean", "why"},
                   {table::align::right, table::align::left, table::align::right,
                    table::align::right, table::align::right, table::align::left});
        for (const auto& w : worst->slowest)
            slow.add_row(
                {std::to_string(w.rank),
                 fmt::format("{} {} {} {}", w.where.tp, w.where.cp, w.where.pp, w.where.dp),
                 ms(w.busy_seconds),
                 w.busy_seconds > 0 ? pct(w.attention_seconds / w.busy_seconds) : "-",
                 fmt::format("{:.3f}", w.busy_over_mean), w.why});
        out += slow.render();
    }
    return out;
}

nlohmann::json candidate_json(const tuner::evaluation& e) {
    return {{"name", e.name},
            {"packing_config", tuner::to_json(e.packing_params)},
            {"sharding_spec", tuner::to_json(e.sharding_params)},
            {"steps", e.steps.size()},
            {"mean_step_seconds", e.mean_step_seconds},
            {"total_seconds", e.total_seconds},
            {"mean_bubble_fraction", mean_bubble(e.steps)},
            {"packing", tuner::to_json(e.packing)},
            {"sharding", shard_summary_json(e.sharding)},
            {"documents_drawn", e.documents_drawn},
            {"documents_exhausted", e.documents_exhausted}};
}

// A compared candidate's figures step by step, one array each (simulated step time and bubble;
// predicted packing imbalance): the HTML report's per-step charts and distributions.
nlohmann::json per_step_json(const tuner::evaluation& e) {
    auto seconds = nlohmann::json::array();
    auto bubble = nlohmann::json::array();
    for (const auto& s : e.steps) {
        seconds.push_back(s.step_seconds);
        bubble.push_back(s.bubble_fraction);
    }
    auto imbalance = nlohmann::json::array();
    auto attention = nlohmann::json::array();
    for (const auto& m : e.packing_steps) {
        imbalance.push_back(m.imbalance);
        attention.push_back(m.attention_imbalance);
    }
    return {{"step_seconds", std::move(seconds)},
            {"bubble_fraction", std::move(bubble)},
            {"predicted_imbalance", std::move(imbalance)},
            {"attention_imbalance", std::move(attention)}};
}

std::string exhausted_note(const tuner::evaluation& e) {
    return e.documents_exhausted
               ? fmt::format("note: {} drew every document before its last step; the last steps "
                             "may be short\n",
                             e.name)
               : std::string();
}

} // namespace

nlohmann::json simulate_json(const tuner::cost_model& costs, const simulate_context& c,
                             const tuner::simulate_job_result& r) {
    return steps_json(costs, c, r.steps, r.total_seconds);
}

std::string simulate_text(const tuner::cost_model& costs, const simulate_context& c,
                          const tuner::simulate_job_result& r) {
    return header_text(costs, c) + steps_text(r.steps, r.total_seconds);
}

nlohmann::json simulate_json(const tuner::cost_model& costs, const simulate_context& c,
                             const tuner::evaluation& chosen,
                             std::span<const compared> comparison) {
    auto j = steps_json(costs, c, chosen.steps, chosen.total_seconds);
    j["measured_fields"] = {"packing.pack_seconds: wall clock of the packer, measured"};
    j["candidate"] = candidate_json(chosen);
    if (c.documents)
        j["data"] = {{"description", c.documents->description},
                     {"documents", c.documents->documents.size()},
                     {"tokens", c.documents->tokens},
                     {"whole_stream", c.documents->complete}};
    if (!comparison.empty()) {
        const double base = comparison.front().result->mean_step_seconds;
        auto& arr = j["compare"] = nlohmann::json::array();
        for (const auto& k : comparison) {
            auto x = candidate_json(*k.result);
            x["role"] = k.role;
            x["predicted_speedup"] =
                k.result->mean_step_seconds > 0 ? base / k.result->mean_step_seconds : 0.0;
            x["per_step"] = per_step_json(*k.result);
            arr.push_back(std::move(x));
        }
        j["compare_baseline"] = comparison.front().result->name;
    }
    return j;
}

std::string simulate_text(const tuner::cost_model& costs, const simulate_context& c,
                          const tuner::evaluation& e) {
    std::string out = header_text(costs, c);
    out += fmt::format("candidate: {}\n", e.name);
    out += steps_text(e.steps, e.total_seconds);
    const auto& p = e.packing;
    out += fmt::format(
        "\npacking (predicted): imbalance mean {:.3f}, p99 {:.3f}, max {:.3f}; delay "
        "per token mean {:.3f}, p99 {:.0f}, max {:.0f} iterations; waiting documents mean {:.1f}, "
        "max {}\n",
        p.imbalance.mean, p.imbalance.p99, p.imbalance.max, p.delay_iterations.mean,
        p.delay_iterations.p99, p.delay_iterations.max, p.mean_waiting_documents,
        p.max_waiting_documents);
    const auto& s = e.sharding;
    out += fmt::format(
        "CP sharding (predicted): attention imbalance mean {:.3f}, worst {:.3f}; token "
        "imbalance mean {:.3f}, worst {:.3f}; layouts applied: per-seq {}, per-doc {}, hybrid {}\n",
        s.mean_attention_imbalance, s.worst_attention_imbalance, s.mean_token_imbalance,
        s.worst_token_imbalance, s.applied[0], s.applied[1], s.applied[3]);
    out += exhausted_note(e);
    return out;
}

std::string compare_text(const tuner::cost_model& costs, const simulate_context& c,
                         std::span<const compared> comparison) {
    std::string out = header_text(costs, c);
    if (comparison.empty())
        return out;
    const auto& base = *comparison.front().result;
    out += fmt::format("\npredicted step time and speedup over {} (simulated with the cost "
                       "model on the same documents, {} steps each; not measured):\n",
                       base.name, base.steps.size());
    table t({"candidate", "role", "step (ms)", "speedup", "tokens", "pack imb.", "delay mean",
             "delay max", "CP attn imb.", "bubble"},
            {table::align::left, table::align::left, table::align::right, table::align::right,
             table::align::right, table::align::right, table::align::right, table::align::right,
             table::align::right, table::align::right});
    for (const auto& k : comparison) {
        const auto& e = *k.result;
        t.add_row({e.name, k.role, ms(e.mean_step_seconds),
                   e.mean_step_seconds > 0
                       ? fmt::format("{:.3f}x", base.mean_step_seconds / e.mean_step_seconds)
                       : "-",
                   e.packing.step_budget_tokens > 0
                       ? pct(e.packing.mean_step_tokens /
                             static_cast<double>(e.packing.step_budget_tokens))
                       : "-",
                   fmt::format("{:.3f}", e.packing.imbalance.mean),
                   fmt::format("{:.3f}", e.packing.delay_iterations.mean),
                   fmt::format("{:.0f}", e.packing.delay_iterations.max),
                   fmt::format("{:.3f}", e.sharding.mean_attention_imbalance),
                   pct(mean_bubble(e.steps))});
    }
    out += t.render();
    out += "speedup = baseline mean step time / candidate mean step time (both simulated); "
           "tokens = mean tokens per step / the step's budget (a candidate that pads trains "
           "fewer tokens a step, so its step time is not the same work); baseline plain: "
           "Megatron's fixed-length packing, documents cut at sequence boundaries; plain-whole: "
           "the same with documents kept whole (WLB-LLM's original packing); pack imb. = mean "
           "over steps of max / mean predicted micro-batch forward time; delay in iterations per "
           "token; CP attn imb. = mean over micro-batches of max / mean CP-rank attention time\n";
    for (const auto& k : comparison)
        out += exhausted_note(*k.result);
    return out;
}

simulate_context simulate_context_of(const tuner::job_spec& job,
                                     const tuner::simulation_setup& setup,
                                     std::vector<wlb::input_identity> inputs,
                                     const tuner::document_set* documents) {
    simulate_context c;
    c.model = job.model.name;
    c.hardware = job.hardware.name;
    c.schedule = setup.plan.schedule.describe(job.layout.pp(), job.layout.vpp());
    c.partition = setup.plan.partition.describe();
    for (const auto& f : setup.faults)
        c.faults.push_back(f.describe());
    c.inputs = std::move(inputs);
    c.documents = documents;
    return c;
}

std::vector<compared> comparison_of(const tuner::simulate_data_outcome& outcome, bool compare) {
    std::vector<compared> out;
    if (compare)
        for (std::size_t i = 0; i < outcome.results.size(); ++i)
            out.push_back({&outcome.results[i], outcome.candidates[i].role});
    return out;
}

void write_simulated_traces(const runtime::trace& t, const std::string& perfetto,
                            const std::string& trace_dir,
                            const std::vector<wlb::input_identity>& inputs,
                            const runtime::model_spec* model) {
    if (!perfetto.empty())
        write_perfetto(t, perfetto, "simulated");
    if (!trace_dir.empty()) {
        auto header = wlb::report_header(runtime::trace_schema, inputs);
        if (model != nullptr) {
            header["model"] = runtime::to_json(*model);
            header["bytes_per_element"] = tuner::cost_options{}.bytes_per_element;
        }
        runtime::write_trace_dir(trace_dir, t, &header);
    }
}

std::string simulated_trace_notes(const std::string& perfetto, const std::string& trace_dir) {
    std::string out;
    if (!perfetto.empty())
        out += "\n" + perfetto_output_note(perfetto, "simulated");
    if (!trace_dir.empty())
        out += fmt::format("trace directory (wlbtune.trace/1, simulated): {}\n", trace_dir);
    return out;
}

nlohmann::json simulate_batch_json(const tuner::job_spec& job,
                                   const tuner::simulate_batch_outcome& outcome) {
    return simulate_json(job.costs(), simulate_context_of(job, outcome.setup, outcome.inputs),
                         outcome.result);
}

std::string simulate_batch_text(const tuner::job_spec& job,
                                const tuner::simulate_batch_outcome& outcome,
                                const std::string& perfetto, const std::string& trace_dir) {
    return simulate_text(job.costs(), simulate_context_of(job, outcome.setup, outcome.inputs),
                         outcome.result) +
           simulated_trace_notes(perfetto, trace_dir);
}

nlohmann::json simulate_data_json(const tuner::job_spec& job,
                                  const tuner::simulate_data_outcome& outcome, bool compare) {
    const auto ctx = simulate_context_of(job, outcome.setup, outcome.inputs, &outcome.documents);
    return simulate_json(job.costs(), ctx, outcome.results[outcome.chosen],
                         comparison_of(outcome, compare));
}

std::string simulate_data_text(const tuner::job_spec& job,
                               const tuner::simulate_data_outcome& outcome, bool compare,
                               const std::string& perfetto, const std::string& trace_dir) {
    const auto ctx = simulate_context_of(job, outcome.setup, outcome.inputs, &outcome.documents);
    const auto& chosen = outcome.results[outcome.chosen];
    std::string text = compare ? compare_text(job.costs(), ctx, comparison_of(outcome, compare))
                               : simulate_text(job.costs(), ctx, chosen);
    if (compare && (!perfetto.empty() || !trace_dir.empty()))
        text += fmt::format("\ntraces are of {}\n", chosen.name);
    return text + simulated_trace_notes(perfetto, trace_dir);
}

void report_simulate_batch(const command_output& out, const tuner::job_spec& job,
                           const tuner::simulate_batch_outcome& outcome,
                           const simulate_files& files) {
    write_simulated_traces(outcome.result.trace, files.perfetto, files.trace_dir, outcome.inputs,
                           &job.model);
    if (out.wants_json()) // built only when it is written, as the --data report is
        out.json(simulate_batch_json(job, outcome));
    out.text(simulate_batch_text(job, outcome, files.perfetto, files.trace_dir));
}

void report_simulate_data(const command_output& out, const tuner::job_spec& job,
                          const tuner::simulate_data_outcome& outcome, bool compare,
                          const simulate_files& files) {
    write_simulated_traces(outcome.results[outcome.chosen].trace, files.perfetto, files.trace_dir,
                           outcome.inputs, &job.model);
    if (out.wants_json() || !files.html.empty()) {
        const auto report = simulate_data_json(job, outcome, compare);
        out.json(report);
        if (!files.html.empty())
            write_html_report(html_kind::simulate, report, files.html);
    }
    out.text(simulate_data_text(job, outcome, compare, files.perfetto, files.trace_dir) +
             html_output_note(files.html));
}

} // namespace wlb::reports
