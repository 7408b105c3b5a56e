// wlbtune analyze: read a job's traces (wlbtune trace directories and Perfetto exports, PyTorch
// profiler / Kineto JSON, Megatron-style timer timelines, Nsight Systems SQLite exports), find the
// stragglers and attribute the lost step time to its causes by what-if replays on the simulator
// (profiler/analysis/analysis.hpp).
#include "base/atomic_file.hpp"
#include "cli/command.hpp"
#include "cli/ingest_options.hpp"
#include "profiler/analysis/analysis.hpp"
#include "reports/analysis_report.hpp"
#include "reports/html/html_report.hpp"

#include <memory>

namespace wlb::cli {
namespace {

struct analyze_options {
    std::vector<std::string> traces;
    ingest_option_set ingest;
    std::string json, perfetto, html;
    int show_steps = 12;
};

void run_analyze(const analyze_options& o, const command_output& out) {
    profiler::analysis_options options;
    o.ingest.apply(options);
    options.ingest.keep_events = !o.perfetto.empty();
    options.keep_ideal = !o.perfetto.empty();
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
    o->ingest.add(*sub);
    add_json_option(*sub, o->json, "wlbtune.analysis/1");
    sub->add_option("--perfetto", o->perfetto,
                    "Write a Perfetto trace: measured timeline, the ideal one beside it, "
                    "stragglers marked (.gz: compressed)");
    add_html_option(*sub, o->html,
                    "the answer, lost seconds by cause, rank x step heatmaps, heavy micro-batches "
                    "and CP ranks, stragglers, a link to the --perfetto trace");
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
