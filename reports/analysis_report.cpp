#include "reports/analysis_report.hpp"

#include "base/atomic_file.hpp"
#include "reports/job_command.hpp"
#include "reports/perfetto.hpp"
#include "reports/table.hpp"
#include "runtime/sim/sim_trace.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fmt/format.h>
#include <map>
#include <nlohmann/json.hpp>

namespace wlb::reports {
namespace {

using profiler::all_causes;
using profiler::cause;
using profiler::cause_count;

std::string pct(double fraction) {
    if (std::abs(fraction) < 0.0005)
        return "0.0%";
    return fmt::format("{:.1f}%", fraction * 100);
}
std::string secs(double s) {
    if (std::abs(s) < 5e-8)
        return "0";
    if (std::abs(s) < 1e-3)
        return fmt::format("{:.1f} us", s * 1e6);
    if (std::abs(s) < 1.0)
        return fmt::format("{:.2f} ms", s * 1e3);
    return fmt::format("{:.3f} s", s);
}

const profiler::cause_estimate* first_step_estimate(const profiler::analysis_result& r, cause c) {
    // The involvement lists of the step that lost the most to the cause.
    const profiler::cause_estimate* best = nullptr;
    for (const auto& s : r.attribution.steps)
        if (s.attributed) {
            const auto& e = s.causes[static_cast<std::size_t>(c)];
            if (!best || e.lost_s > best->lost_s)
                best = &e;
        }
    return best;
}

std::string involved_text(const std::vector<profiler::involvement>& list, std::size_t n = 3) {
    std::string out;
    for (std::size_t i = 0; i < list.size() && i < n; ++i)
        out += fmt::format("{}{} {:.2f}x", out.empty() ? "" : ", ", list[i].what, list[i].factor);
    if (list.size() > n)
        out += fmt::format(", +{} more", list.size() - n);
    return out;
}

double per_step(const profiler::analysis_result& r, double total) {
    return r.attribution.attributed_steps ? total / r.attribution.attributed_steps : 0.0;
}

// The lost time against the batches' predicted work (profiler/analysis/work_check.hpp).
std::string work_check_text(const profiler::analysis_result& r) {
    const auto& w = r.work;
    if (r.job.batches.empty())
        return {};
    const std::string file = r.job.batches_file.empty()
                                 ? std::string("the batches")
                                 : std::filesystem::path(r.job.batches_file).filename().string();
    if (!w.available)
        return fmt::format("\nLost time against the batches' predicted work: not checked: {}\n",
                           w.reason);
    std::string out = fmt::format(
        "\nLost time against the batches' predicted work ({}: tokens and attention pairs per "
        "micro-batch and CP rank; {} steps)\n",
        file, w.steps);
    out += fmt::format(
        "  compute per (micro-batch, CP rank) cell, measured vs predicted: {}\n",
        w.correlation ? fmt::format("r = {:.3f} over {} cells", *w.correlation, w.cells.size())
        : w.cells.size() < 3 ? fmt::format("too few cells ({}) for a correlation", w.cells.size())
                             : fmt::format("no correlation: the predicted or the measured compute "
                                           "is the same in every one of the {} cells",
                                           w.cells.size()));
    std::string heaviest;
    if (w.heaviest_micro_batch_groups > 0)
        heaviest += fmt::format("the heaviest micro-batch of a replica in {} of {}",
                                w.heaviest_micro_batch_agree, w.heaviest_micro_batch_groups);
    if (w.heaviest_cp_rank_groups > 0)
        heaviest += fmt::format("{}the heaviest CP rank of a micro-batch in {} of {}",
                                heaviest.empty() ? "" : "; ", w.heaviest_cp_rank_agree,
                                w.heaviest_cp_rank_groups);
    if (!heaviest.empty())
        out += fmt::format("  measured where predicted: {}\n", heaviest);
    table t({"cause", "lost / step", "from the batches' work"},
            {table::align::left, table::align::right, table::align::right});
    const double n = std::max(1, w.steps);
    for (const cause c : profiler::batch_causes)
        t.add_row({std::string(profiler::cause_title(c)),
                   secs(w.measured_lost_s[static_cast<std::size_t>(c)] / n),
                   secs(w.predicted_lost_s[static_cast<std::size_t>(c)] / n)});
    out += t.render();
    out += "  (both simulated what-if: over the measured durations, and over durations fitted to "
           "the batches' work per stage and pass; a slow worker and communication are not in the "
           "batches)\n";
    if (!w.skipped.empty())
        out +=
            fmt::format("  {} steps not checked; first: {}\n", w.skipped.size(), w.skipped.front());
    return out;
}

std::string_view format_title(std::string_view format) {
    if (format == "perfetto")
        return "wlbtune Perfetto";
    if (format == "nsys")
        return "Nsight Systems";
    return format;
}

// "0-3, 7, 9-10"; at most 12 ranges, then how many more.
std::string rank_list(const std::vector<int>& ranks) {
    std::string out;
    int n = 0;
    for (std::size_t i = 0; i < ranks.size();) {
        std::size_t j = i;
        while (j + 1 < ranks.size() && ranks[j + 1] == ranks[j] + 1)
            ++j;
        if (++n > 12) {
            out += fmt::format(", and {} more ranks", ranks.size() - i);
            break;
        }
        out += fmt::format("{}{}", out.empty() ? "ranks " : ", ",
                           i == j ? fmt::format("{}", ranks[i])
                                  : fmt::format("{}-{}", ranks[i], ranks[j]));
        i = j + 1;
    }
    return out;
}

// What unlocks the what-if on profiler traces that do not mark passes: ranges named like
// Megatron's timers around each micro-batch's passes.
std::string passes_hint(std::string_view format) {
    if (format != "kineto" && format != "nsys")
        return {};
    const bool nvtx = format == "nsys";
    const std::string range = nvtx ? "torch.cuda.nvtx.range" : "torch.profiler.record_function";
    return fmt::format(
        "  The what-if needs each micro-batch's forward and backward pass marked: wrap them in {} "
        "ranges named like Megatron's timers, e.g.\n"
        "    with {}(\"forward-compute\"): loss = model(micro_batch)\n"
        "    with {}(\"backward-compute\"): loss.backward()\n"
        "    with {}(\"optimizer\"): optimizer.step()\n"
        "  (and forward-send, forward-recv, backward-send, backward-recv around pipeline "
        "transfers; the k-th range of a name in a step is micro-batch k; docs/formats.md)\n",
        nvtx ? "NVTX" : "record_function", range, range, range);
}

} // namespace

recommendation recommend(const profiler::analysis_result& r, cause c) {
    const auto& job = r.job;
    const auto& l = job.job_layout;
    const auto* est = first_step_estimate(r, c);
    const std::string who = est ? involved_text(est->involved) : std::string();
    // The command that wrote the trace (wlbtune's own traces record it): changes are printed as
    // that job with one option changed, or tune on its documents.
    const auto cmd = job_command::parse(job.command_line);
    const auto injected = cmd.value({"--inject"});
    const std::string injection =
        job.source == "simulated" && injected
            ? fmt::format(" (this simulation injects {}: the imbalance may be the injection's, "
                          "not the data's)",
                          *injected)
            : std::string();
    const std::string no_dataset =
        cmd.empty() ? "the traces do not name the job's documents: run `wlbtune tune` on them "
                      "(--data) with --layout " +
                          l.spec() + " to search packing and sharding"
                    : "the job replays a fixed batch file or a tuned config, so its packing and "
                      "sharding are set: tune on the documents it was made from (wlbtune tune "
                      "--data ...)";
    recommendation rec;
    switch (c) {
    case cause::pp_packing:
    case cause::dp_imbalance: {
        rec.text = c == cause::pp_packing
                       ? "micro-batches of one replica carry unequal work (attention grows with "
                         "the square of document length)"
                       : "DP replicas carry unequal work per step";
        const auto packing = cmd.packing();
        if (!packing) {
            rec.text +=
                ": pack the global batch by predicted work (wlb packing, WLB-LLM)" + injection;
            rec.needs = no_dataset;
        } else if (*packing != "wlb") {
            rec.text += fmt::format(": the job packs with {}; wlb packing (variable-length with "
                                    "outlier-delay queues, WLB-LLM) balances micro-batches of "
                                    "every replica by predicted work; simulate it{}:",
                                    *packing, injection);
            rec.command = cmd.simulate_with("--packing", "wlb");
        } else {
            rec.text += fmt::format(": the job already packs with wlb; search its limit, queues "
                                    "and window for these documents (and sharding with them){}:",
                                    injection);
            rec.command = cmd.tune();
        }
        break;
    }
    case cause::cp_sharding: {
        rec.text = "CP peers get unequal attention work for the same micro-batch";
        const auto sharding = cmd.sharding();
        if (!sharding) {
            rec.text += ": shard per document (or adaptively) instead of splitting the packed "
                        "sequence" +
                        injection;
            rec.needs = no_dataset;
        } else if (*sharding == "per-seq") {
            rec.text += fmt::format(": the job splits the packed sequence (per-seq); adaptive "
                                    "sharding splits documents where that balances attention; "
                                    "simulate it{}:",
                                    injection);
            rec.command = cmd.simulate_with("--sharding", "adaptive");
        } else {
            rec.text += fmt::format(": the job already shards with {}; the imbalance left comes "
                                    "with the packing: search packing and sharding together "
                                    "(hybrid thresholds, queues){}:",
                                    *sharding, injection);
            rec.command = cmd.tune();
        }
        break;
    }
    case cause::stage_partitioning:
        if (!r.attribution.suggested_partition.empty()) {
            rec.text = fmt::format("stages carry unequal work ({}): move layers off the heavy "
                                   "stages; partition {} (now {}) evens them in the replay; "
                                   "simulate it{}:",
                                   who, r.attribution.suggested_partition, r.attribution.partition,
                                   injection);
            rec.command = cmd.simulate_with("--partition", r.attribution.suggested_partition);
            if (rec.command.empty())
                rec.needs = fmt::format("simulate the job's model and layout with --partition {} "
                                        "(the traces do not say which model)",
                                        r.attribution.suggested_partition);
        } else if (r.attribution.partition_is_closest) {
            rec.text = fmt::format("stages carry unequal work ({}), and no whole-layer partition "
                                   "evens them better than the current {}: nothing to change in "
                                   "the partition (the difference is less than a layer, the "
                                   "embedding or the output layer on an end stage, and shrinks "
                                   "as stages hold more layers)",
                                   who, r.attribution.partition);
        } else if (r.attribution.partition.empty()) {
            rec.text = fmt::format("stages carry unequal work ({}); the traces time whole passes, "
                                   "not layers, so no layer partition can be computed from them: "
                                   "move layers off the heavy stages and compare step times",
                                   who);
        } else {
            rec.text = fmt::format("stages carry unequal work ({}): move layers off the heavy "
                                   "stages",
                                   who);
        }
        break;
    case cause::slow_worker: {
        // Steps in which the worker named (the costliest step's slowest) was slow.
        const int named = est && !est->involved.empty() ? est->involved.front().rank : -1;
        int flagged = 0;
        for (const auto& s : r.attribution.steps) {
            if (!s.attributed)
                continue;
            const auto& inv = s.causes[static_cast<std::size_t>(c)].involved;
            flagged += std::any_of(inv.begin(), inv.end(),
                                   [&](const profiler::involvement& x) { return x.rank == named; })
                           ? 1
                           : 0;
        }
        const std::string when =
            flagged == r.attribution.attributed_steps
                ? std::string("in every step")
                : fmt::format("in {} of {} steps", flagged, r.attribution.attributed_steps);
        const std::string slow = who.empty() ? std::string("a TP group is") : who + " is";
        if (!injection.empty()) {
            rec.text = fmt::format("{} slower than its peers on the same work {}: no "
                                   "configuration removes it{}",
                                   slow, when, injection);
            break;
        }
        rec.text = fmt::format("{} slower than its peers on the same work {}: no configuration "
                               "removes it; {} (on the node of the slow rank):",
                               slow, when,
                               flagged == r.attribution.attributed_steps
                                   ? "drain or replace that GPU or node and check its clocks, "
                                     "power and thermals"
                                   : "if it recurs, check that GPU or node's clocks, power and "
                                     "thermals");
        rec.command = "nvidia-smi -q -d PERFORMANCE,CLOCK,POWER";
        break;
    }
    case cause::communication:
        rec.text = fmt::format("some transfers take longer than the same transfers elsewhere "
                               "({}): check that link (NIC, NVLink, switch), or reorder the axes "
                               "so that group stays inside a node; the layout's groups:",
                               who);
        rec.command =
            fmt::format("wlbtune layout --layout {} --order {}", l.spec(), l.order_string());
        break;
    }
    return rec;
}

std::string analysis_text(const profiler::analysis_result& r, int max_steps) {
    const auto& job = r.job;
    const auto& a = r.attribution;
    const auto& l = job.job_layout;
    int present = 0;
    for (const auto& rt : job.ranks)
        present += rt.present ? 1 : 0;
    std::string out =
        fmt::format("wlbtune analyze: {} traces, layout {} (order {}, {}), {} of {} ranks, {}\n",
                    format_title(job.format), l.spec(), l.order_string(), job.layout_source,
                    present, l.world_size(),
                    job.step_selection.empty() ? fmt::format("{} steps", job.steps.size())
                                               : job.step_selection);
    if (job.source == "simulated")
        out += "simulated trace: its timeline is the simulator's, so every figure below called "
               "measured is simulated\n";
    if (present < l.world_size()) {
        std::vector<int> have;
        for (int k = 0; k < l.world_size(); ++k)
            if (job.ranks[static_cast<std::size_t>(k)].present)
                have.push_back(k);
        out += fmt::format("partial job: {} of {} ranks have a trace ({}); the breakdown and the "
                           "stragglers cover them; {}\n",
                           present, l.world_size(), rank_list(have),
                           a.scope.empty() ? std::string("every DP replica has a trace of each "
                                                         "stage and CP rank, so the what-if "
                                                         "covers the job")
                                           : a.scope);
    }
    out += "\n";
    if (a.attributed_steps > 0 && a.replay_s > 0.0) {
        const double lost = a.lost_s_total();
        std::vector<std::pair<double, cause>> order;
        for (cause c : all_causes)
            order.emplace_back(a.lost_s[static_cast<std::size_t>(c)], c);
        std::sort(order.begin(), order.end(),
                  [](const auto& x, const auto& y) { return x.first > y.first; });
        std::string parts;
        for (const auto& [s, c] : order)
            if (s > 0.0005 * a.replay_s)
                parts += fmt::format("{}{} to {}", parts.empty() ? "" : ", ", pct(s / a.replay_s),
                                     profiler::cause_title(c));
        out += fmt::format("{} of step time lost{}{}\n", pct(lost / a.replay_s),
                           parts.empty() ? "" : "; ", parts);
        out += fmt::format("  (simulated what-if over the measured durations: {} per step lost "
                           "of {} replayed; {} measured; {} of {} steps attributed)\n",
                           secs(per_step(r, lost)), secs(per_step(r, a.replay_s)),
                           secs(per_step(r, a.measured_s)), a.attributed_steps, job.steps.size());
        if (a.dominant) {
            const cause c = *a.dominant;
            const auto* est = first_step_estimate(r, c);
            out += fmt::format("\nDominant cause: {}, {} per step", profiler::cause_title(c),
                               secs(per_step(r, a.lost_s[static_cast<std::size_t>(c)])));
            if (est && !est->involved.empty())
                out += fmt::format(" ({})", involved_text(est->involved));
            const auto rec = recommend(r, c);
            out += fmt::format("\nChange: {}\n", rec.text);
            if (!rec.command.empty())
                out += fmt::format("  {}\n", rec.command);
            else if (!rec.needs.empty())
                out += fmt::format("  ({})\n", rec.needs);
        } else {
            out += "\nNo cause costs measurable time: the steps are balanced.\n";
        }
        out += "\n";
        table t({"cause", "lost / step", "of step", "involved (largest first)"},
                {table::align::left, table::align::right, table::align::right, table::align::left});
        for (const auto& [s, c] : order) {
            const auto* est = first_step_estimate(r, c);
            t.add_row({std::string(profiler::cause_title(c)), secs(per_step(r, s)),
                       pct(s / a.replay_s), est ? involved_text(est->involved) : ""});
        }
        out += t.render();
        double sum = 0.0;
        for (double s : a.lost_s)
            sum += s;
        out += fmt::format("every cause evened: {} per step lost (the causes alone sum to {}; "
                           "they interact)\n",
                           secs(per_step(r, lost)), secs(per_step(r, sum)));
        out += fmt::format("replay vs measured: {} vs {} per step ({:+.1f}%)\n",
                           secs(per_step(r, a.replay_s)), secs(per_step(r, a.measured_s)),
                           a.measured_s > 0 ? (a.replay_s / a.measured_s - 1.0) * 100 : 0.0);
        out += work_check_text(r);
    } else {
        out += "No step could be attributed:\n";
        int shown = 0;
        bool no_passes = false;
        for (const auto& s : a.steps)
            if (!s.attributed) {
                no_passes =
                    no_passes ||
                    s.skipped_reason.find("no compute tied to a micro-batch") != std::string::npos;
                if (shown++ < 3)
                    out += fmt::format("  step {}: {}\n", s.step, s.skipped_reason);
            }
        if (no_passes)
            out += passes_hint(job.format);
        out += "Breakdown and stragglers below are measured.\n";
    }

    // Stragglers.
    out += "\nStragglers (measured)\n";
    auto speeds = r.stragglers.speed;
    std::sort(speeds.begin(), speeds.end(),
              [](const auto& x, const auto& y) { return x.relative_time > y.relative_time; });
    std::string slow;
    for (std::size_t i = 0; i < speeds.size() && i < 4; ++i)
        if (speeds[i].relative_time > 1.02)
            slow += fmt::format("{}rank {} {:.2f}x", slow.empty() ? "" : ", ", speeds[i].rank,
                                speeds[i].relative_time);
    out += fmt::format("  slowest on the same kernels: {}\n",
                       slow.empty() ? "none over 2% slower than its peers" : slow);
    auto late = r.stragglers.arrivals;
    std::sort(late.begin(), late.end(),
              [](const auto& x, const auto& y) { return x.wait_imposed_s > y.wait_imposed_s; });
    std::string lates;
    for (std::size_t i = 0; i < late.size() && i < 4; ++i)
        if (late[i].last_arrivals > 0)
            lates += fmt::format("{}rank {} last in {} of {} collectives ({} imposed)",
                                 lates.empty() ? "" : "; ", late[i].rank, late[i].last_arrivals,
                                 late[i].collectives, secs(late[i].wait_imposed_s));
    out += fmt::format("  last to arrive at collectives: {}\n", lates.empty() ? "none" : lates);

    // Per step.
    out += "\n";
    table st({"step", "measured", "replay", "ideal", "lost", "attention", "linear", "other",
              "exposed comm", "idle"});
    int shown = 0;
    for (const auto& b : r.breakdown) {
        if (shown++ >= max_steps)
            break;
        const profiler::step_attribution* sa = nullptr;
        for (const auto& s : a.steps)
            if (s.step == b.step)
                sa = &s;
        double att = 0, lin = 0, oth = 0, exp = 0, idle = 0;
        for (const auto& rb : b.ranks) {
            att += rb.attention_s;
            lin += rb.linear_s + rb.unsplit_s;
            oth += rb.other_s;
            for (const auto& c : rb.comm)
                exp += c.exposed_s;
            idle += rb.idle_s;
        }
        const double n = std::max<double>(1.0, static_cast<double>(b.ranks.size()));
        const bool ok = sa && sa->attributed;
        st.add_row({fmt::format("{}", b.step), secs(b.seconds()), ok ? secs(sa->replay_s) : "-",
                    ok ? secs(sa->ideal_s) : "-", ok ? pct(sa->lost_s() / sa->replay_s) : "-",
                    secs(att / n), secs(lin / n), secs(oth / n), secs(exp / n), secs(idle / n)});
    }
    out += "per step (compute, exposed communication and idle: mean over ranks, measured)\n";
    out += st.render();
    if (static_cast<int>(r.breakdown.size()) > max_steps)
        out += fmt::format("({} more steps in the JSON report)\n",
                           r.breakdown.size() - static_cast<std::size_t>(max_steps));

    const auto& ck = job.clock;
    out += fmt::format("\nclock alignment: {}", ck.method);
    if (ck.method.rfind("none", 0) != 0)
        out += fmt::format(", largest offset {}, collective ends after alignment within {} "
                           "(median) / {} (p90) over {} matched collectives",
                           secs(static_cast<double>(ck.max_abs_offset_ns) * 1e-9),
                           secs(static_cast<double>(ck.residual_median_ns) * 1e-9),
                           secs(static_cast<double>(ck.residual_p90_ns) * 1e-9),
                           ck.matched_collectives);
    if (ck.p2p_links > 0)
        out += fmt::format("; {} groups of ranks joined through point-to-point transfers",
                           ck.p2p_links);
    out += "\n";
    if (!job.warnings.empty()) {
        out += fmt::format("\n{} warnings:\n", job.warnings.size());
        for (const auto& w : job.warnings)
            out += fmt::format("  {}: {}\n", w.where, w.message);
    }
    int skipped = 0;
    for (const auto& s : a.steps)
        skipped += s.attributed ? 0 : 1;
    if (skipped > 0 && a.attributed_steps > 0) {
        out += fmt::format("{} steps not attributed; first: ", skipped);
        for (const auto& s : a.steps)
            if (!s.attributed) {
                out += fmt::format("step {}: {}\n", s.step, s.skipped_reason);
                break;
            }
    }
    return out;
}

std::vector<wlb::input_identity> identify_inputs(const profiler::job_trace& job) {
    std::vector<wlb::input_identity> ids;
    for (const auto& f : job.files) {
        std::error_code ec;
        if (std::filesystem::is_directory(f, ec)) {
            ids.push_back(
                wlb::identify_file((std::filesystem::path(f) / "manifest.json").string()));
            for (const auto& rt : job.ranks)
                if (rt.present && rt.file.rfind(f, 0) == 0)
                    ids.push_back(wlb::identify_file(rt.file));
        } else {
            ids.push_back(wlb::identify_file(f));
        }
    }
    if (!job.batches_file.empty())
        ids.push_back(wlb::identify_file(job.batches_file));
    return ids;
}

nlohmann::json analysis_json(const profiler::analysis_result& r,
                             const std::vector<wlb::input_identity>& inputs) {
    const auto& job = r.job;
    const auto& a = r.attribution;
    const auto& l = job.job_layout;
    auto j = wlb::report_header(analysis_schema, inputs);
    int present = 0;
    for (const auto& rt : job.ranks)
        present += rt.present ? 1 : 0;
    j["job"] = {{"format", job.format},
                {"layout", l.spec()},
                {"order", l.order_string()},
                {"layout_source", job.layout_source},
                {"world_size", l.world_size()},
                {"ranks_present", present},
                {"steps", job.steps},
                {"step_selection", job.step_selection},
                {"events", job.event_count()},
                {"records", job.record_count()},
                {"input_bytes", job.input_bytes},
                {"tp_replicated", job.tp_replicated},
                {"source", job.source},
                {"note", job.note}};
    const auto& ck = job.clock;
    j["clock_alignment"] = {{"method", ck.method},
                            {"offset_ns", ck.offset_ns},
                            {"max_abs_offset_ns", ck.max_abs_offset_ns},
                            {"matched_collectives", ck.matched_collectives},
                            {"p2p_links", ck.p2p_links},
                            {"residual_median_ns", ck.residual_median_ns},
                            {"residual_p90_ns", ck.residual_p90_ns},
                            {"unaligned_ranks", ck.unaligned_ranks}};
    const int n = a.attributed_steps;
    nlohmann::json summary = {
        {"figures", "simulated what-if: the measured durations replayed on the simulator, "
                    "each cause evened out in turn and all together"},
        {"attributed_steps", n},
        {"measured_seconds_per_step", n ? a.measured_s / n : 0.0},
        {"replay_seconds_per_step", n ? a.replay_s / n : 0.0},
        {"ideal_seconds_per_step", n ? a.ideal_s / n : 0.0},
        {"lost_seconds_per_step", n ? a.lost_s_total() / n : 0.0},
        {"lost_fraction", a.replay_s > 0 ? a.lost_s_total() / a.replay_s : 0.0},
        {"dominant_cause",
         a.dominant ? nlohmann::json(profiler::cause_name(*a.dominant)) : nlohmann::json(nullptr)}};
    if (!a.suggested_partition.empty())
        summary["suggested_partition"] = a.suggested_partition;
    if (!a.partition.empty())
        summary["partition"] = a.partition;
    j["summary"] = summary;
    std::vector<int> missing;
    for (int k = 0; k < l.world_size(); ++k)
        if (!job.ranks[static_cast<std::size_t>(k)].present)
            missing.push_back(k);
    j["coverage"] = {{"ranks_present", present},
                     {"world_size", l.world_size()},
                     {"ranks_missing", missing.empty() ? std::string() : rank_list(missing)},
                     {"what_if_replicas", a.replicas},
                     {"scope", a.scope}};
    if (a.dominant) {
        const auto rec = recommend(r, *a.dominant);
        j["recommendation"] = {{"cause", profiler::cause_name(*a.dominant)},
                               {"change", rec.text},
                               {"command", rec.command.empty() ? nlohmann::json(nullptr)
                                                               : nlohmann::json(rec.command)},
                               {"needs", rec.needs}};
    }
    auto involved_json = [](const std::vector<profiler::involvement>& list) {
        auto arr = nlohmann::json::array();
        for (const auto& x : list) {
            nlohmann::json o = {{"what", x.what}, {"factor", x.factor}};
            if (x.rank >= 0)
                o["rank"] = x.rank;
            arr.push_back(o);
        }
        return arr;
    };
    auto& causes = j["causes"] = nlohmann::json::array();
    for (cause c : all_causes) {
        const double s = a.lost_s[static_cast<std::size_t>(c)];
        const auto* est = first_step_estimate(r, c);
        causes.push_back(
            {{"cause", profiler::cause_name(c)},
             {"title", profiler::cause_title(c)},
             {"lost_seconds_total", s},
             {"lost_seconds_per_step", n ? s / n : 0.0},
             {"fraction_of_step", a.replay_s > 0 ? s / a.replay_s : 0.0},
             {"involved", est ? involved_json(est->involved) : nlohmann::json::array()}});
    }
    auto& steps = j["steps"] = nlohmann::json::array();
    std::map<std::int64_t, const profiler::step_breakdown*> bd;
    for (const auto& b : r.breakdown)
        bd[b.step] = &b;
    std::map<std::int64_t, const profiler::step_stragglers*> sg;
    for (const auto& s : r.stragglers.steps)
        sg[s.step] = &s;
    for (const auto& s : a.steps) {
        nlohmann::json o = {{"step", s.step}, {"attributed", s.attributed}};
        if (s.attributed) {
            o["schedule"] = s.schedule;
            o["measured_seconds"] = s.measured_s;
            o["replay_seconds"] = s.replay_s;
            o["ideal_seconds"] = s.ideal_s;
            o["lost_seconds"] = s.lost_s();
            auto& lc = o["causes"] = nlohmann::json::object();
            for (const auto& e : s.causes)
                lc[std::string(profiler::cause_name(e.what))] = {
                    {"lost_seconds", e.lost_s},
                    {"evened_step_seconds", e.evened_step_s},
                    {"involved", involved_json(e.involved)}};
        } else {
            o["skipped_reason"] = s.skipped_reason;
        }
        if (auto it = bd.find(s.step); it != bd.end()) {
            auto& ranks = o["breakdown"] = nlohmann::json::array();
            o["window_seconds"] = it->second->seconds();
            for (const auto& rb : it->second->ranks) {
                nlohmann::json comm = nlohmann::json::object();
                for (int k = 0; k < runtime::lane_count; ++k) {
                    const auto& c = rb.comm[static_cast<std::size_t>(k)];
                    if (c.total_s > 0.0)
                        comm[std::string(runtime::lane_name(static_cast<runtime::lane>(k)))] = {
                            {"total_seconds", c.total_s},
                            {"exposed_seconds", c.exposed_s},
                            {"overlapped_seconds", c.overlapped_s}};
                }
                ranks.push_back({{"rank", rb.rank},
                                 {"attention_seconds", rb.attention_s},
                                 {"linear_seconds", rb.linear_s},
                                 {"other_seconds", rb.other_s},
                                 {"unsplit_compute_seconds", rb.unsplit_s},
                                 {"memory_seconds", rb.memory_s},
                                 {"compute_busy_seconds", rb.compute_busy_s},
                                 {"busy_seconds", rb.busy_s},
                                 {"span_seconds", rb.span_s},
                                 {"communication", comm},
                                 {"idle_seconds", rb.idle_s}});
            }
        }
        if (auto it = sg.find(s.step); it != sg.end()) {
            auto sp = nlohmann::json::array();
            for (const auto& x : it->second->speed)
                sp.push_back(
                    {{"rank", x.rank}, {"relative_time", x.relative_time}, {"kernels", x.kernels}});
            auto ar = nlohmann::json::array();
            for (const auto& x : it->second->arrivals)
                if (x.collectives > 0)
                    ar.push_back({{"rank", x.rank},
                                  {"last_arrivals", x.last_arrivals},
                                  {"collectives", x.collectives},
                                  {"wait_imposed_seconds", x.wait_imposed_s}});
            o["stragglers"] = {{"relative_speed", sp}, {"last_arrival", ar}};
        }
        steps.push_back(std::move(o));
    }
    auto sp = nlohmann::json::array();
    for (const auto& x : r.stragglers.speed)
        sp.push_back(
            {{"rank", x.rank}, {"relative_time", x.relative_time}, {"kernels", x.kernels}});
    auto ar = nlohmann::json::array();
    for (const auto& x : r.stragglers.arrivals)
        ar.push_back({{"rank", x.rank},
                      {"last_arrivals", x.last_arrivals},
                      {"collectives", x.collectives},
                      {"wait_imposed_seconds", x.wait_imposed_s}});
    j["stragglers"] = {{"relative_speed", sp}, {"last_arrival", ar}};
    auto& w = j["warnings"] = nlohmann::json::array();
    for (const auto& x : job.warnings)
        w.push_back({{"where", x.where}, {"message", x.message}});
    if (!job.batches.empty()) {
        const auto& wc = r.work;
        nlohmann::json o = {{"available", wc.available}, {"batches", job.batches_file}};
        if (!wc.available) {
            o["reason"] = wc.reason;
        } else {
            o["steps"] = wc.steps;
            o["correlation"] =
                wc.correlation ? nlohmann::json(*wc.correlation) : nlohmann::json(nullptr);
            o["heaviest_micro_batch"] = {{"groups", wc.heaviest_micro_batch_groups},
                                         {"as_predicted", wc.heaviest_micro_batch_agree}};
            o["heaviest_cp_rank"] = {{"groups", wc.heaviest_cp_rank_groups},
                                     {"as_predicted", wc.heaviest_cp_rank_agree}};
            auto& lc = o["lost_seconds"] = nlohmann::json::object();
            for (const cause c : profiler::batch_causes)
                lc[std::string(profiler::cause_name(c))] = {
                    {"measured_durations", wc.measured_lost_s[static_cast<std::size_t>(c)]},
                    {"predicted_durations", wc.predicted_lost_s[static_cast<std::size_t>(c)]}};
            auto& cells = o["cells"] = nlohmann::json::array();
            for (const auto& c : wc.cells)
                cells.push_back({{"step", c.step},
                                 {"replica", c.replica},
                                 {"micro_batch", c.micro_batch},
                                 {"cp_rank", c.cp_rank},
                                 {"tokens", c.tokens},
                                 {"attention_pairs", c.attention_pairs},
                                 {"measured_seconds", c.measured_s},
                                 {"predicted_seconds", c.predicted_s}});
            o["skipped"] = wc.skipped;
        }
        j["work_check"] = std::move(o);
    }
    return j;
}

std::string analysis_output_notes(const std::string& perfetto, const std::string& json) {
    std::string out;
    if (!perfetto.empty())
        out += "\n" + perfetto_output_note(perfetto, "measured, ideal simulated beside it, "
                                                     "stragglers marked");
    if (!json.empty() && json != "-")
        out += fmt::format("JSON report (wlbtune.analysis/1): {}\n", json);
    return out;
}

} // namespace wlb::reports
