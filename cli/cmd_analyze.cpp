// wlbtune analyze: read a job's traces (wlbtune trace directories and Perfetto exports, PyTorch
// profiler / Kineto JSON, Megatron-style timer timelines, Nsight Systems SQLite exports), find the
// stragglers and attribute the lost step time to its causes by what-if replays on the simulator
// (profiler/analysis/analysis.hpp).
#include "base/atomic_file.hpp"
#include "cli/command.hpp"
#include "profiler/analysis/analysis.hpp"
#include "reports/analysis_report.hpp"
#include "reports/html/html_report.hpp"
#include "runtime/parallel/layout.hpp"

#include <memory>
#include <optional>

namespace wlb::cli {
namespace {

struct analyze_options {
    std::vector<std::string> traces;
    std::string format = "auto", layout, order = std::string(runtime::layout::default_order);
    std::string clock = "auto", json, perfetto, html;
    int show_steps = 12;
    std::optional<std::string> steps;
    std::string rank_map;
    int threads = 0;
};

void run_analyze(const analyze_options& o, const command_output& out) {
    profiler::analysis_options options;
    options.ingest.format = profiler::parse_trace_format(o.format);
    if (!o.layout.empty())
        options.ingest.job_layout = runtime::layout::parse(o.layout, o.order);
    options.ingest.clock = profiler::parse_clock_option(o.clock);
    options.ingest.rank_map = o.rank_map;
    options.ingest.threads = o.threads;
    options.ingest.keep_events = !o.perfetto.empty();
    options.keep_ideal = !o.perfetto.empty();
    if (o.steps)
        options.steps = profiler::parse_step_range(*o.steps);
    const auto result = profiler::analyze(o.traces, options);
    if (!o.perfetto.empty())
        reports::write_analysis_perfetto(result, o.perfetto);
    if (out.wants_json() || !o.html.empty()) {
        const auto report = reports::analysis_json(result, reports::identify_inputs(result.job));
        out.json(report);
        if (!o.html.empty())
            reports::write_html_report(reports::html_kind::analyze, report, o.html,
                                       {.perfetto_path = o.perfetto});
    }
    out.text(reports::analysis_text(result, o.show_steps) +
             reports::analysis_output_notes(o.perfetto, out.json_path()) +
             reports::html_output_note(o.html));
}

} // namespace

registered_command register_analyze(CLI::App& app, command_output& out) {
    auto o = std::make_shared<analyze_options>();
    auto* sub = app.add_subcommand(
        "analyze", "Find stragglers in a job's traces and attribute the lost step time to PP "
                   "packing, CP sharding, DP imbalance, stage partitioning, a slow worker or "
                   "communication (what-if on the simulator)");
    sub->add_option("traces", o->traces,
                    "Trace directories (wlbtune.trace/1) or files: Kineto JSON (.json, .json.gz, "
                    "one per rank), timer timelines, Nsight Systems SQLite exports (.sqlite, one "
                    "per rank), wlbtune's Perfetto exports, or directories of them")
        ->required();
    sub->add_option("--format", o->format, "auto, wlbtune, kineto, megatron, nsys or perfetto");
    sub->add_option("--rank-map", o->rank_map,
                    "Ranks of timer-timeline processes and threads (or files) the names do not "
                    "give: 'SUBJECT:REGEX -> AXIS=VALUE, ...; ...' (SUBJECT process, thread, "
                    "file, pid or tid; AXIS rank, tp, cp, pp or dp; VALUE N or $1[+K]), or "
                    "@FILE (docs/formats.md, \"Rank map\")");
    sub->add_option("--threads", o->threads, "Threads reading the traces (0: one per core)")
        ->check(non_negative());
    sub->add_option("-l,--layout", o->layout,
                    "Parallel degrees tp=,cp=,pp=,dp=[,vpp=] (overrides what the traces say; "
                    "needed for Kineto traces of more than plain data parallelism)");
    sub->add_option("--order", o->order, "Axis order of --layout, innermost first");
    sub->add_option("--clock-offset", o->clock,
                    "Clock alignment: auto (on collective ends), none, or R=NS[,R=NS...] "
                    "(added to rank R's timestamps; units ns, us, ms, s)");
    add_json_option(*sub, o->json, "wlbtune.analysis/1");
    sub->add_option("--perfetto", o->perfetto,
                    "Write a Perfetto trace: measured timeline, the ideal one beside it, "
                    "stragglers marked (.gz: compressed)");
    add_html_option(*sub, o->html,
                    "the answer, lost seconds by cause, rank x step heatmaps, heavy micro-batches "
                    "and CP ranks, stragglers, a link to the --perfetto trace");
    sub->add_option("--steps", o->steps,
                    "Analyze these steps only, by id: A:B, A: (from A on), :B or A; e.g. 1: "
                    "leaves out a warm-up step 0 (default: every step)");
    sub->add_option("--show-steps", o->show_steps, "Steps listed in the terminal table")
        ->check(non_negative());
    sub->footer("Example: wlbtune analyze traces/ --layout tp=8,cp=2,pp=4,dp=2 --json report.json "
                "--perfetto analysis.json.gz");
    return {sub, [o, &out] {
                out.set_json(o->json);
                if (!o->perfetto.empty())
                    wlb::check_output_path(o->perfetto, "--perfetto");
                run_analyze(*o, out);
            }};
}

} // namespace wlb::cli
