#include "profiler/capture/activity_trace.hpp"

#include <algorithm>
#include <array>
#include <map>
#include <nlohmann/json.hpp>

namespace wlb::profiler {

std::string short_kernel_name(std::string_view name) {
    if (name.substr(0, 5) == "void ")
        name.remove_prefix(5);
    // Cut at the parameter list: the first '(' outside template brackets that does not open
    // "(anonymous namespace)".
    constexpr std::string_view anonymous = "(anonymous namespace)";
    int depth = 0;
    for (std::size_t i = 0; i < name.size(); ++i) {
        if (name.substr(i, anonymous.size()) == anonymous)
            i += anonymous.size() - 1;
        else if (name[i] == '<')
            ++depth;
        else if (name[i] == '>' && depth > 0)
            --depth;
        else if (name[i] == '(' && depth == 0 && i > 0)
            return std::string(name.substr(0, i));
    }
    return std::string(name);
}

namespace {

struct classified {
    runtime::lane where = runtime::lane::compute;
    runtime::event_kind kind = runtime::event_kind::compute;
};

classified classify(const device_activity& a, const std::string& name,
                    const conversion_options& o) {
    classified c;
    if (a.kind == activity_kind::synchronization) {
        c.where = runtime::lane::host;
        c.kind = runtime::event_kind::other;
        return c;
    }
    if (auto it = o.stream_lanes.find(a.stream); it != o.stream_lanes.end())
        c.where = it->second;
    if (a.kind != activity_kind::kernel) {
        c.kind = runtime::event_kind::other;
        return c;
    }
    if (name.rfind("nccl", 0) == 0) {
        if (name.find("SendRecv") != std::string::npos || name.find("Recv") != std::string::npos)
            c.kind = runtime::event_kind::recv;
        else if (name.find("Send") != std::string::npos)
            c.kind = runtime::event_kind::send;
        else
            c.kind = runtime::event_kind::collective;
    }
    return c;
}

} // namespace

std::vector<runtime::trace_event> activities_to_trace(const capture_batch& batch,
                                                      const conversion_options& o,
                                                      conversion_stats& stats) {
    std::unordered_map<std::uint64_t, range_context> contexts(batch.contexts.begin(),
                                                              batch.contexts.end());
    std::unordered_map<std::uint32_t, std::uint64_t> links;
    for (const auto& l : batch.links)
        links.emplace(l.correlation_id, l.context_id);
    // Step ranges by start, for activities without a link.
    std::map<std::int64_t, std::int64_t> step_starts;
    for (const auto& r : batch.ranges)
        if (r.level == range_level::step)
            if (auto it = contexts.find(r.context_id); it != contexts.end())
                step_starts[r.start_ns] = it->second.step;

    std::vector<runtime::trace_event> events;
    events.reserve(batch.activities.size());
    for (const auto& a : batch.activities) {
        if (a.end_ns < a.start_ns) {
            ++stats.invalid;
            continue;
        }
        runtime::trace_event e;
        e.rank = o.rank;
        e.name = a.kind == activity_kind::kernel ? short_kernel_name(a.name) : a.name;
        const auto c = classify(a, e.name, o);
        e.where = c.where;
        e.kind = c.kind;
        e.start_ns = a.start_ns - o.origin_ns;
        e.dur_ns = a.end_ns - a.start_ns;
        if (a.kind == activity_kind::memcpy || a.kind == activity_kind::memset)
            e.bytes = static_cast<double>(a.bytes);
        switch (a.kind) {
        case activity_kind::kernel:
            ++stats.kernels;
            break;
        case activity_kind::memcpy:
            ++stats.memcpys;
            break;
        case activity_kind::memset:
            ++stats.memsets;
            break;
        case activity_kind::synchronization:
            ++stats.syncs;
            break;
        }
        const range_context* ctx = nullptr;
        if (auto l = links.find(a.correlation_id); a.correlation_id != 0 && l != links.end())
            if (auto it = contexts.find(l->second); it != contexts.end())
                ctx = &it->second;
        if (ctx != nullptr) {
            e.step = std::max<std::int64_t>(0, ctx->step);
            e.micro_batch = ctx->micro_batch;
            e.stage = ctx->stage;
            e.virtual_stage = ctx->virtual_stage;
            e.ph = ctx->ph;
        } else {
            ++stats.unattributed;
            if (auto it = step_starts.upper_bound(a.start_ns); it != step_starts.begin())
                e.step = std::max<std::int64_t>(0, std::prev(it)->second);
        }
        events.push_back(std::move(e));
    }

    // Serialize each lane: sort by start, move a start that falls inside the previous event.
    std::stable_sort(events.begin(), events.end(),
                     [](const auto& x, const auto& y) { return x.start_ns < y.start_ns; });
    std::array<std::int64_t, runtime::lane_count> lane_end;
    lane_end.fill(INT64_MIN);
    for (auto& e : events) {
        auto& end = lane_end[static_cast<std::size_t>(e.where)];
        if (e.start_ns < end) {
            const std::int64_t original_end = e.end_ns();
            ++stats.overlaps_clipped;
            stats.clipped_ns += std::min(end, original_end) - e.start_ns;
            e.start_ns = end;
            e.dur_ns = std::max<std::int64_t>(0, original_end - end);
        }
        end = std::max(end, e.end_ns());
    }
    std::stable_sort(events.begin(), events.end(),
                     [](const auto& x, const auto& y) { return x.start_ns < y.start_ns; });
    return events;
}

nlohmann::json capture_report_json(std::string_view source, const conversion_stats& s,
                                   const capture_batch& batch) {
    return {
        {"source", source},
        {"records",
         {{"kernels", s.kernels},
          {"memcpys", s.memcpys},
          {"memsets", s.memsets},
          {"syncs", s.syncs},
          {"ranges", batch.ranges.size()}}},
        {"attribution", {{"unattributed", s.unattributed}}},
        {"overlaps", {{"clipped", s.overlaps_clipped}, {"clipped_ns", s.clipped_ns}}},
        {"losses",
         {{"dropped_records", batch.losses.dropped_records},
          {"buffers_refused", batch.losses.buffers_refused},
          {"unsupported_records", batch.losses.unsupported_records},
          {"invalid_records", s.invalid}}},
        {"warnings", batch.losses.warnings},
    };
}

} // namespace wlb::profiler
