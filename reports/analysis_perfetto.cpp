// The Perfetto trace of `wlbtune analyze` (reports/analysis_report.hpp): keeps the rules of
// reports/perfetto.hpp (process per rank named "rank N tpA cpB ppC dpD", named threads, complete
// events with step / micro_batch / stage / phase args, no overlapping slices on a thread) so
// that reports/perfetto_check.hpp accepts it.
#include "base/atomic_file.hpp"
#include "reports/analysis_report.hpp"
#include "reports/perfetto.hpp"
#include "runtime/sim/sim_trace.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>

namespace wlb::reports {
void write_analysis_perfetto(const profiler::analysis_result& r, const std::string& path) {
    const auto& job = r.job;
    const auto& l = job.job_layout;
    auto out = open_perfetto_file(path);
    // kind "analysis": analyze refuses this file as input and names the traces in "inputs".
    nlohmann::json other = {
        {"generator", "wlbtune"},
        {"kind", "analysis"},
        {"inputs", job.files},
        {"source", job.format},
        {"label", "measured, with the ideal timeline (simulated what-if: every cause evened out) "
                  "on the \"ideal\" threads and stragglers marked"},
        {"layout", l.spec()},
        {"order", l.order_string()}};
    out.write(fmt::format("{{\"displayTimeUnit\":\"ns\",\"otherData\":{},\"traceEvents\":[\n",
                          other.dump()));
    bool first = true;
    auto emit = [&](const std::string& line) {
        out.write(first ? "" : ",\n");
        out.write(line);
        first = false;
    };

    // Ideal timelines: simulated per attributed step, placed at the measured step's start.
    runtime::trace ideal;
    ideal.meta.job_layout = l;
    std::int64_t flow = 1'000'000'000;
    for (const auto& is : r.attribution.ideal)
        flow = runtime::append_step_trace(ideal, is.plan, is.result, is.start_ns, flow);

    // Straggler marks per rank: each attributed step where its TP group was a slow worker, or it
    // was the slowest on the same kernels, or it arrived last most often.
    std::map<int, std::vector<std::pair<std::int64_t, std::string>>> marks; // rank -> (step, text)
    for (const auto& s : r.attribution.steps) {
        if (!s.attributed)
            continue;
        for (const auto& x : s.causes[static_cast<int>(profiler::cause::slow_worker)].involved)
            for (int t = 0; t < l.tp(); ++t)
                if (x.rank >= 0)
                    marks[x.rank + t].push_back(
                        {s.step, fmt::format("straggler: slow worker {:.2f}x", x.factor)});
    }
    for (const auto& st : r.stragglers.steps) {
        for (const auto& x : st.speed)
            if (x.relative_time > 1.05)
                marks[x.rank].push_back(
                    {st.step, fmt::format("straggler: {:.2f}x slower on the same kernels",
                                          x.relative_time)});
        const profiler::rank_arrivals* worst = nullptr;
        for (const auto& x : st.arrivals)
            if (x.last_arrivals > 0 && (!worst || x.wait_imposed_s > worst->wait_imposed_s))
                worst = &x;
        if (worst)
            marks[worst->rank].push_back(
                {st.step, fmt::format("straggler: last at {} collectives, {:.3f} ms imposed",
                                      worst->last_arrivals, worst->wait_imposed_s * 1e3)});
    }

    const profiler::step_index index(job);
    std::string line;
    for (std::size_t rr = 0; rr < job.ranks.size(); ++rr) {
        const int rank = static_cast<int>(rr);
        const auto& events = job.ranks[rr].events;
        const std::vector<runtime::trace_event>* ideal_events =
            rr < ideal.ranks.size() ? &ideal.ranks[rr] : nullptr;
        if (events.empty() && (!ideal_events || ideal_events->empty()))
            continue;
        const auto c = l.coords_of(rank);
        emit(fmt::format(R"({{"ph":"M","pid":{},"name":"process_name","args":{{"name":{}}}}})",
                         rank, nlohmann::json(rank_process_name(l, rank)).dump()));
        emit(fmt::format(
            R"({{"ph":"M","pid":{},"name":"process_sort_index","args":{{"sort_index":{}}}}})", rank,
            rank));
        auto thread = [&](int tid, const std::string& name, int sort) {
            emit(fmt::format(
                R"({{"ph":"M","pid":{},"tid":{},"name":"thread_name","args":{{"name":{}}}}})", rank,
                tid, nlohmann::json(name).dump()));
            emit(fmt::format(
                R"({{"ph":"M","pid":{},"tid":{},"name":"thread_sort_index","args":{{"sort_index":{}}}}})",
                rank, tid, sort));
        };
        // Measured threads: one per (lane, stream).
        std::map<std::pair<int, std::int32_t>, int> tids;
        std::map<int, int> streams_per_lane;
        for (const auto& e : events)
            if (tids.try_emplace({static_cast<int>(e.where), e.stream}, 0).second)
                ++streams_per_lane[static_cast<int>(e.where)];
        int next = 1;
        for (auto& [key, tid] : tids) {
            tid = next++;
            const std::string lane(runtime::lane_name(static_cast<runtime::lane>(key.first)));
            thread(tid,
                   streams_per_lane[key.first] > 1 ? fmt::format("{} stream {}", lane, key.second)
                                                   : lane,
                   tid);
        }
        for (const auto& e : events) {
            line = fmt::format(
                R"({{"ph":"X","pid":{},"tid":{},"name":{},"cat":"{}","ts":{},"dur":{},"args":{{"step":{},"micro_batch":{},"stage":{},"virtual_stage":{},"phase":"{}","work":"{}")",
                rank, tids[{static_cast<int>(e.where), e.stream}],
                nlohmann::json(job.names[e.name]).dump(), runtime::event_kind_name(e.kind),
                perfetto_micros(e.start_ns), perfetto_micros(e.dur_ns), e.step, e.micro_batch, c.pp,
                e.virtual_stage, runtime::phase_name(e.ph), profiler::work_class_name(e.work));
            if (e.bytes > 0)
                line += fmt::format(R"(,"bytes":{})", e.bytes);
            line += "}}";
            emit(line);
        }
        // The ideal timeline (simulated).
        if (ideal_events && !ideal_events->empty()) {
            bool used[runtime::lane_count] = {};
            for (const auto& e : *ideal_events)
                used[static_cast<int>(e.where)] = true;
            for (int k = 0; k < runtime::lane_count; ++k)
                if (used[k])
                    thread(100 + k,
                           fmt::format("ideal {} (simulated)",
                                       runtime::lane_name(static_cast<runtime::lane>(k))),
                           100 + k);
            for (const auto& e : *ideal_events)
                emit(fmt::format(
                    R"({{"ph":"X","pid":{},"tid":{},"name":{},"cat":"ideal","ts":{},"dur":{},"args":{{"step":{},"micro_batch":{},"stage":{},"virtual_stage":{},"phase":"{}"}}}})",
                    rank, 100 + static_cast<int>(e.where), nlohmann::json(e.name).dump(),
                    perfetto_micros(e.start_ns), perfetto_micros(e.dur_ns), e.step, e.micro_batch,
                    e.stage, e.virtual_stage, runtime::phase_name(e.ph)));
        }
        // Straggler marks over the rank's own window of each flagged step.
        auto it = marks.find(rank);
        if (it == marks.end())
            continue;
        std::map<std::int64_t, std::string> by_step;
        for (const auto& [step, text] : it->second) {
            auto& t = by_step[step];
            if (t.find(text) == std::string::npos)
                t += (t.empty() ? "" : "; ") + text;
        }
        thread(200, "stragglers", 200);
        std::int64_t prev_end = std::numeric_limits<std::int64_t>::min();
        for (const auto& [step, text] : by_step) {
            const auto span = index.events(rank, step);
            if (span.empty())
                continue;
            std::int64_t lo = std::numeric_limits<std::int64_t>::max();
            std::int64_t hi = std::numeric_limits<std::int64_t>::min();
            for (std::uint32_t i : span) {
                lo = std::min(lo, events[i].start_ns);
                hi = std::max(hi, events[i].end_ns());
            }
            lo = std::max(lo, prev_end);
            if (hi <= lo)
                continue;
            prev_end = hi;
            emit(fmt::format(
                R"({{"ph":"X","pid":{},"tid":200,"name":{},"cat":"straggler","ts":{},"dur":{},"args":{{"step":{},"micro_batch":-1,"stage":{},"virtual_stage":-1,"phase":"none"}}}})",
                rank, nlohmann::json(text).dump(), perfetto_micros(lo), perfetto_micros(hi - lo),
                step, c.pp));
        }
    }
    out.write("\n]}\n");
    out.commit();
}

} // namespace wlb::reports
