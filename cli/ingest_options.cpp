#include "cli/ingest_options.hpp"

#include "cli/command.hpp"
#include "runtime/parallel/layout.hpp"

namespace wlb::cli {

void ingest_option_set::add(CLI::App& sub) {
    m_order = std::string(runtime::layout::default_order);
    sub.add_option("--format", m_format, "auto, wlbtune, kineto, megatron, nsys or perfetto");
    sub.add_option("--rank-map", m_rank_map,
                   "Ranks of timer-timeline processes and threads (or files) the names do not "
                   "give: 'SUBJECT:REGEX -> AXIS=VALUE, ...; ...' (SUBJECT process, thread, "
                   "file, pid or tid; AXIS rank, tp, cp, pp or dp; VALUE N or $1[+K]), or "
                   "@FILE (docs/formats.md, \"Rank map\")");
    sub.add_option("--threads", m_threads, "Threads reading the traces (0: one per core)")
        ->check(non_negative());
    sub.add_option("-l,--layout", m_layout,
                   "Parallel degrees tp=,cp=,pp=,dp=[,vpp=] (overrides what the traces say; "
                   "needed for Kineto traces of more than plain data parallelism)");
    sub.add_option("--order", m_order, "Axis order of --layout, innermost first");
    sub.add_option("--clock-offset", m_clock,
                   "Clock alignment: auto (on collective ends), none, or R=NS[,R=NS...] "
                   "(added to rank R's timestamps; units ns, us, ms, s)");
    sub.add_option("--steps", m_steps,
                   "Analyze these steps only, by id: A:B, A: (from A on), :B or A; e.g. 1: "
                   "leaves out a warm-up step 0 (default: every step)");
}

void ingest_option_set::apply(profiler::analysis_options& options) const {
    options.ingest.format = profiler::parse_trace_format(m_format);
    if (!m_layout.empty())
        options.ingest.job_layout = runtime::layout::parse(m_layout, m_order);
    options.ingest.clock = profiler::parse_clock_option(m_clock);
    options.ingest.rank_map = m_rank_map;
    options.ingest.threads = m_threads;
    if (m_steps)
        options.steps = profiler::parse_step_range(*m_steps);
}

} // namespace wlb::cli
