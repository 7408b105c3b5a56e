#include "reports/perfetto.hpp"

#include "base/atomic_file.hpp"
#include "base/provenance.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace wlb::reports {
std::string perfetto_micros(std::int64_t ns) {
    const char* sign = ns < 0 ? "-" : "";
    const std::int64_t a = ns < 0 ? -ns : ns;
    return fmt::format("{}{}.{:03d}", sign, a / 1000, a % 1000);
}

wlb::atomic_writer open_perfetto_file(const std::string& path) {
    return wlb::atomic_writer(path, path.ends_with(".gz"));
}

std::string rank_process_name(const runtime::layout& l, int rank) {
    const auto c = l.coords_of(rank);
    return fmt::format("rank {} tp{} cp{} pp{} dp{}", rank, c.tp, c.cp, c.pp, c.dp);
}

void write_perfetto(const runtime::trace& t, const std::string& path, const std::string& label) {
    using runtime::lane;
    auto out = open_perfetto_file(path);
    // generator and kind mark the file as wlbtune's own (analyze reads it back as the trace it
    // is); command_line is the command that wrote it.
    nlohmann::json other = {{"generator", "wlbtune"},
                            {"kind", "trace"},
                            {"command_line", wlb::command_line()},
                            {"source", t.meta.source},
                            {"label", label},
                            {"layout", t.meta.job_layout.spec()},
                            {"order", t.meta.job_layout.order_string()},
                            {"steps", t.meta.steps},
                            {"tp_replicated", t.meta.tp_replicated},
                            {"note", t.meta.note}};
    out.write(fmt::format("{{\"displayTimeUnit\":\"ns\",\"otherData\":{},\"traceEvents\":[\n",
                          other.dump()));
    bool first = true;
    auto emit = [&](const std::string& line) {
        out.write(first ? "" : ",\n");
        out.write(line);
        first = false;
    };
    std::string buffer;
    for (std::size_t r = 0; r < t.ranks.size(); ++r) {
        const auto& events = t.ranks[r];
        if (events.empty())
            continue;
        const int rank = static_cast<int>(r);
        emit(fmt::format(R"({{"ph":"M","pid":{},"name":"process_name","args":{{"name":{}}}}})",
                         rank, nlohmann::json(rank_process_name(t.meta.job_layout, rank)).dump()));
        emit(fmt::format(
            R"({{"ph":"M","pid":{},"name":"process_sort_index","args":{{"sort_index":{}}}}})", rank,
            rank));
        bool used[runtime::lane_count] = {};
        for (const auto& e : events)
            used[static_cast<int>(e.where)] = true;
        for (int k = 0; k < runtime::lane_count; ++k)
            if (used[k]) {
                emit(fmt::format(
                    R"({{"ph":"M","pid":{},"tid":{},"name":"thread_name","args":{{"name":"{}"}}}})",
                    rank, k + 1, runtime::lane_name(static_cast<lane>(k))));
                emit(fmt::format(
                    R"({{"ph":"M","pid":{},"tid":{},"name":"thread_sort_index","args":{{"sort_index":{}}}}})",
                    rank, k + 1, k));
            }
        for (const auto& e : events) {
            const int tid = static_cast<int>(e.where) + 1;
            buffer = fmt::format(
                R"({{"ph":"X","pid":{},"tid":{},"name":{},"cat":"{}","ts":{},"dur":{},"args":{{"step":{},"micro_batch":{},"stage":{},"virtual_stage":{},"phase":"{}")",
                rank, tid, nlohmann::json(e.name).dump(), runtime::event_kind_name(e.kind),
                perfetto_micros(e.start_ns), perfetto_micros(e.dur_ns), e.step, e.micro_batch,
                e.stage, e.virtual_stage, runtime::phase_name(e.ph));
            if (e.bytes)
                buffer += fmt::format(R"(,"bytes":{})", *e.bytes);
            if (e.flops)
                buffer += fmt::format(R"(,"flops":{})", *e.flops);
            buffer += "}}";
            emit(buffer);
            if (e.flow_id != 0 && e.kind == runtime::event_kind::send)
                emit(fmt::format(
                    R"({{"ph":"s","pid":{},"tid":{},"name":"pp transfer","cat":"pp","id":{},"ts":{}}})",
                    rank, tid, e.flow_id, perfetto_micros(e.start_ns)));
            if (e.flow_id != 0 && e.kind == runtime::event_kind::recv)
                emit(fmt::format(
                    R"({{"ph":"f","bp":"e","pid":{},"tid":{},"name":"pp transfer","cat":"pp","id":{},"ts":{}}})",
                    rank, tid, e.flow_id, perfetto_micros(e.end_ns())));
        }
    }
    out.write("\n]}\n");
    out.commit();
}

std::string perfetto_output_note(const std::string& path, const std::string& what) {
    return path.empty() ? std::string()
                        : fmt::format("Perfetto trace ({}): {} (open in https://ui.perfetto.dev)\n",
                                      what, path);
}

} // namespace wlb::reports
