#include "reports/profile_report.hpp"

#include "runtime/parallel/layout.hpp"

#include <algorithm>
#include <cstring>
#include <fmt/format.h>

namespace wlb::reports {

std::string profile_text(const profiler::profile_result& r) {
    std::string out;
    const auto& s = r.summary;
    if (r.exit) {
        const auto& e = *r.exit;
        out +=
            e.signal != 0
                ? fmt::format("wlbtune profile: the command was ended by signal {} ({}) after "
                              "{:.1f} s\n",
                              e.signal, ::strsignal(e.signal), e.seconds)
                : fmt::format("wlbtune profile: the command exited with code {} after {:.1f} s\n",
                              e.exit_code, e.seconds);
    } else {
        out += fmt::format("wlbtune profile --finalize: session \"{}\"\n", r.session);
    }
    if (!s.cuda_used) {
        out += fmt::format("capture: {}: nothing was captured, since no process of the command "
                           "initialized CUDA{} (manifest: {})\n",
                           r.dir, r.injected ? "" : " or the build has no injection library",
                           s.manifest);
        for (const auto& n : s.notes)
            if (n.find("initialized CUDA") == std::string::npos) // said above
                out += fmt::format("  note: {}\n", n);
        return out;
    }
    auto ranks = s.ranks;
    std::sort(ranks.begin(), ranks.end());
    out += fmt::format("capture: {} ({} processes; trace files for ranks {})\n", r.dir, s.processes,
                       ranks.empty() ? "none" : runtime::rank_ranges(ranks));
    out += fmt::format("  steps: {} kept per rank at most, found from {}\n", s.steps,
                       s.step_sources.empty() ? "none" : s.step_sources);
    out += fmt::format("  layout: {} (order {}), {}\n", s.layout, s.order, s.layout_source);
    out += s.micro_batches
               ? "  micro-batches and passes: from the job's NVTX ranges\n"
               : "  micro-batches and passes: none (the job has no NVTX forward/backward or "
                 "micro-batch ranges): analyze gives the breakdown and the stragglers, not the "
                 "seconds each cause costs\n";
    if (s.dropped_records > 0)
        out += fmt::format("  lost: {} activity records dropped (bounded buffers; "
                           "--buffers/--buffer-mb raise the bound, --steps/--seconds or --armed "
                           "shorten the capture)\n",
                           s.dropped_records);
    for (const auto& n : s.notes)
        out += fmt::format("  note: {}\n", n);
    out += fmt::format("next: {}\n", r.analyze_command);
    return out;
}

std::string trigger_text(const std::string& dir, const profiler::trigger_request& t) {
    const std::string what = t.steps > 0 ? fmt::format("the next {} steps", t.steps)
                             : t.seconds > 0
                                 ? fmt::format("{:g} s", t.seconds)
                                 : std::string("the window length the job was started with");
    return fmt::format("wlbtune trigger: request {} written to {}/control.json: every process of "
                       "the job captures {} (each looks every WLBTUNE_POLL_MS, 500 ms by "
                       "default); the files are written when the window closes\n",
                       t.id, dir, what);
}

} // namespace wlb::reports
