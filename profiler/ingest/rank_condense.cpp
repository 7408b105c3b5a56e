#include "profiler/ingest/rank_condense.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <limits>
#include <map>
#include <tuple>
#include <unordered_map>

namespace wlb::profiler {
namespace {

using interval = std::pair<std::int64_t, std::int64_t>;
using runtime::event_kind;
using runtime::lane;

// Sorted, disjoint union of `v` (sorted in place first).
std::vector<interval> merged(std::vector<interval>& v) {
    std::sort(v.begin(), v.end());
    std::vector<interval> out;
    for (const auto& x : v) {
        if (!out.empty() && x.first <= out.back().second)
            out.back().second = std::max(out.back().second, x.second);
        else
            out.push_back(x);
    }
    return out;
}

std::int64_t length(const std::vector<interval>& v) {
    std::int64_t n = 0;
    for (const auto& x : v)
        n += x.second - x.first;
    return n;
}

// Length of [a, b) covered by the sorted, disjoint `cover`.
std::int64_t covered(const std::vector<interval>& cover, std::int64_t a, std::int64_t b) {
    auto it = std::upper_bound(cover.begin(), cover.end(),
                               interval{a, std::numeric_limits<std::int64_t>::max()});
    if (it != cover.begin())
        --it;
    std::int64_t n = 0;
    for (; it != cover.end() && it->first < b; ++it)
        n += std::max<std::int64_t>(0, std::min(b, it->second) - std::max(a, it->first));
    return n;
}

void clip_overlaps(rank_trace& rt, trace_part& part, std::string_view who) {
    auto& ev = rt.events;
    std::stable_sort(ev.begin(), ev.end(), [](const job_event& a, const job_event& b) {
        return a.start_ns < b.start_ns;
    });
    std::map<std::pair<int, std::int32_t>, std::size_t> last;
    bool removed = false;
    for (std::size_t i = 0; i < ev.size(); ++i) {
        auto& e = ev[i];
        auto [it, fresh] = last.try_emplace({static_cast<int>(e.where), e.stream}, i);
        if (fresh)
            continue;
        const auto& prev = ev[it->second];
        if (e.start_ns < prev.end_ns()) {
            const std::int64_t overlap = prev.end_ns() - e.start_ns;
            if (e.end_ns() <= prev.end_ns()) {
                part.warn(fmt::format("{}:{}", rt.file, who),
                          fmt::format("\"{}\" at {} ns lies inside \"{}\" on the same {} stream; "
                                      "left out",
                                      part.names[e.name], e.start_ns, part.names[prev.name],
                                      runtime::lane_name(e.where)),
                          "overlapping events");
                e.dur_ns = -1; // removed below
                removed = true;
                continue;
            }
            part.warn(fmt::format("{}:{}", rt.file, who),
                      fmt::format("\"{}\" at {} ns overlaps \"{}\" by {} ns on the same {} "
                                  "stream; its start is moved to the end of the other",
                                  part.names[e.name], e.start_ns, part.names[prev.name], overlap,
                                  runtime::lane_name(e.where)),
                      "overlapping events");
            e.start_ns += overlap;
            e.dur_ns -= overlap;
        }
        it->second = i;
    }
    if (removed)
        ev.erase(
            std::remove_if(ev.begin(), ev.end(), [](const job_event& e) { return e.dur_ns < 0; }),
            ev.end());
    // Clipping may move a start past a later one's.
    std::stable_sort(ev.begin(), ev.end(), [](const job_event& a, const job_event& b) {
        return a.start_ns < b.start_ns;
    });
}

void drop_incomplete_step(rank_trace& rt, trace_part& part, std::string_view who) {
    if (!rt.truncated)
        return;
    auto& ev = rt.events;
    std::int64_t last_step = rt.incomplete_step;
    if (last_step < 0)
        for (const auto& e : ev)
            last_step = std::max<std::int64_t>(last_step, e.step);
    if (last_step < 0)
        return;
    const auto before = ev.size();
    ev.erase(std::remove_if(ev.begin(), ev.end(),
                            [&](const job_event& e) { return e.step == last_step; }),
             ev.end());
    part.warn(rt.file, fmt::format("{}: the file ends early, so its last step {} is incomplete; "
                                   "its {} events are left out",
                                   who, last_step, before - ev.size()));
}

step_summary summarize(const std::vector<job_event>& ev, const std::vector<std::uint32_t>& idx,
                       std::int64_t step) {
    step_summary s;
    s.step = step;
    s.first_ns = std::numeric_limits<std::int64_t>::max();
    s.last_ns = std::numeric_limits<std::int64_t>::min();
    s.busy_first_ns = s.first_ns;
    s.busy_last_ns = s.last_ns;
    std::vector<interval> compute, all;
    for (std::uint32_t i : idx) {
        const auto& e = ev[i];
        s.first_ns = std::min(s.first_ns, e.start_ns);
        s.last_ns = std::max(s.last_ns, e.end_ns());
        if (e.where == lane::host)
            continue;
        s.busy_first_ns = std::min(s.busy_first_ns, e.start_ns);
        s.busy_last_ns = std::max(s.busy_last_ns, e.end_ns());
        all.emplace_back(e.start_ns, e.end_ns());
        if (e.kind != event_kind::compute)
            continue;
        switch (e.work) {
        case work_class::attention:
            s.attention_ns += e.dur_ns;
            break;
        case work_class::linear:
            s.linear_ns += e.dur_ns;
            break;
        case work_class::mixed:
            s.unsplit_ns += e.dur_ns;
            break;
        case work_class::memory:
            s.memory_ns += e.dur_ns;
            continue; // busy, not compute
        default:
            s.other_ns += e.dur_ns;
            break;
        }
        compute.emplace_back(e.start_ns, e.end_ns());
    }
    if (s.busy_first_ns > s.busy_last_ns)
        s.busy_first_ns = s.busy_last_ns = s.first_ns;
    const auto cover = merged(compute);
    s.compute_busy_ns = length(cover);
    s.busy_ns = length(merged(all));
    for (std::uint32_t i : idx) {
        const auto& e = ev[i];
        if (!e.is_comm() || e.where == lane::host)
            continue;
        const bool collective = e.kind == event_kind::collective;
        auto it = std::find_if(s.comm.begin(), s.comm.end(), [&](const comm_time& c) {
            return c.group == e.group && c.where == e.where && c.collective == collective;
        });
        if (it == s.comm.end()) {
            s.comm.push_back({e.group, e.where, collective, 0, 0});
            it = s.comm.end() - 1;
        }
        it->total_ns += e.dur_ns;
        it->exposed_ns += e.dur_ns - covered(cover, e.start_ns, e.end_ns());
    }
    return s;
}

void summarize_steps(rank_trace& rt) {
    std::map<std::int64_t, std::vector<std::uint32_t>> by_step;
    for (std::size_t i = 0; i < rt.events.size(); ++i)
        if (rt.events[i].step >= 0)
            by_step[rt.events[i].step].push_back(static_cast<std::uint32_t>(i));
    rt.summaries.clear();
    rt.summaries.reserve(by_step.size());
    for (const auto& [step, idx] : by_step)
        rt.summaries.push_back(summarize(rt.events, idx, step));
}

// The merge key of an event; merge = false when the event stays a record of its own.
struct merge_key {
    std::int32_t step, name, group, stream;
    std::int16_t micro_batch, virtual_stage;
    std::uint8_t where, kind, ph, work;
    friend bool operator==(const merge_key&, const merge_key&) = default;
};

struct merge_key_hash {
    std::size_t operator()(const merge_key& k) const noexcept {
        std::size_t h = static_cast<std::size_t>(k.step) * 0x9E3779B97F4A7C15ull;
        for (const std::int64_t x :
             {std::int64_t{k.name}, std::int64_t{k.group}, std::int64_t{k.stream},
              std::int64_t{k.micro_batch}, std::int64_t{k.virtual_stage},
              std::int64_t{k.where} << 24 | std::int64_t{k.kind} << 16 | std::int64_t{k.ph} << 8 |
                  std::int64_t{k.work}})
            h = (h ^ static_cast<std::size_t>(x)) * 0x100000001B3ull;
        return h;
    }
};

void merge_events(rank_trace& rt) {
    std::vector<job_event> out;
    out.reserve(rt.events.size() / 4 + 16);
    std::unordered_map<merge_key, std::size_t, merge_key_hash> at;
    for (const auto& e : rt.events) {
        const bool mergeable =
            e.step >= 0 && (e.kind == event_kind::compute || e.kind == event_kind::other);
        if (!mergeable) {
            out.push_back(e);
            continue;
        }
        const merge_key k{static_cast<std::int32_t>(e.step),
                          e.name,
                          e.group,
                          e.stream,
                          e.micro_batch,
                          e.virtual_stage,
                          static_cast<std::uint8_t>(e.where),
                          static_cast<std::uint8_t>(e.kind),
                          static_cast<std::uint8_t>(e.ph),
                          static_cast<std::uint8_t>(e.work)};
        auto [it, fresh] = at.try_emplace(k, out.size());
        if (fresh) {
            out.push_back(e);
            continue;
        }
        auto& r = out[it->second];
        r.start_sum_ns += (e.start_ns - r.start_ns) + e.start_sum_ns;
        r.dur_ns += e.dur_ns;
        r.bytes += e.bytes;
        r.count += e.count;
    }
    rt.events = std::move(out);
    rt.events.shrink_to_fit();
}

} // namespace

void condense_rank(rank_trace& rt, trace_part& part, std::string_view who, bool keep_events) {
    rt.events_read = static_cast<std::int64_t>(rt.events.size());
    clip_overlaps(rt, part, who);
    drop_incomplete_step(rt, part, who);
    summarize_steps(rt);
    if (!keep_events)
        merge_events(rt);
}

} // namespace wlb::profiler
