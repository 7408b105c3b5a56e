#include "profiler/ingest/job_trace.hpp"

#include "base/error.hpp"

#include <algorithm>
#include <array>
#include <fmt/format.h>
#include <fmt/ranges.h>

namespace wlb::profiler {

std::string_view work_class_name(work_class w) noexcept {
    constexpr std::array<std::string_view, 6> names = {"none",  "attention", "linear",
                                                       "other", "mixed",     "memory"};
    return names[static_cast<std::size_t>(w)];
}

std::int32_t name_table::intern(std::string_view name) {
    // Heterogeneous lookup needs C++20 transparent hashing; a short-lived key is cheap next to
    // parsing the event it came from, and names repeat (kernels), so most calls hit.
    thread_local std::string key;
    key.assign(name);
    auto it = m_ids.find(key);
    if (it != m_ids.end())
        return it->second;
    const auto id = static_cast<std::int32_t>(m_names.size());
    m_names.push_back(key);
    m_ids.emplace(key, id);
    return id;
}

namespace {

std::string group_key(runtime::lane where, std::vector<int>& members, std::string_view name) {
    std::sort(members.begin(), members.end());
    members.erase(std::unique(members.begin(), members.end()), members.end());
    std::string key = fmt::format("{}|{}|", static_cast<int>(where), fmt::join(members, ","));
    if (members.empty())
        key += name; // no ranks: the name is all that tells groups apart
    return key;
}

} // namespace

std::int32_t trace_part::group_of(runtime::lane where, std::vector<int> members,
                                  std::string_view name) {
    std::string key = group_key(where, members, name);
    auto it = m_group_ids.find(key);
    if (it != m_group_ids.end())
        return it->second;
    const auto id = static_cast<std::int32_t>(groups.size());
    groups.push_back({std::string(name), where, std::move(members)});
    m_group_ids.emplace(std::move(key), id);
    return id;
}

void trace_part::warn(std::string where, std::string message, std::string_view kind) {
    if (!kind.empty()) {
        auto it = m_warn_counts.find(kind);
        if (it == m_warn_counts.end())
            it = m_warn_counts.emplace(std::string(kind), 0).first;
        if (++it->second > max_warnings_per_kind) {
            ++dropped_warnings[std::string(kind)];
            return;
        }
    }
    warnings.push_back({{std::move(where), std::move(message)}, std::string(kind)});
}

trace_part::entry& trace_part::add_rank(int rank, std::string file) {
    auto& e = ranks.emplace_back();
    e.rank = rank;
    e.trace.present = true;
    e.trace.file = std::move(file);
    return e;
}

void job_trace::absorb(trace_part&& part) {
    std::vector<std::int32_t> name_map(part.names.size());
    for (std::size_t i = 0; i < part.names.size(); ++i)
        name_map[i] = names.intern(part.names[static_cast<std::int32_t>(i)]);
    std::vector<std::int32_t> group_map(part.groups.size());
    for (std::size_t i = 0; i < part.groups.size(); ++i) {
        auto& g = part.groups[i];
        group_map[i] = group_of(g.where, std::move(g.ranks), g.name);
    }
    for (auto& w : part.warnings)
        warn(std::move(w.w.where), std::move(w.w.message), w.kind);
    for (const auto& [kind, n] : part.dropped_warnings)
        m_warn_counts[kind] += n;
    files.insert(files.end(), std::make_move_iterator(part.files.begin()),
                 std::make_move_iterator(part.files.end()));
    input_bytes += part.input_bytes;
    if (!part.source_layout.empty())
        source_layout = part.source_layout;
    if (!part.source_order.empty())
        source_order = part.source_order;
    source_world_size = std::max(source_world_size, part.source_world_size);
    for (const auto& [r, c] : part.rank_coords)
        rank_coords[r] = c;
    per_layer_events = per_layer_events && part.per_layer_events;
    tp_replicated = tp_replicated || part.tp_replicated;
    if (!part.note.empty())
        note = part.note;
    if (!part.source.empty())
        source = part.source;
    if (!part.command_line.empty())
        command_line = part.command_line;
    for (const auto& [name, n] : part.unknown_timers)
        unknown_timers[name] += n;
    for (auto& e : part.ranks) {
        for (auto& ev : e.trace.events) {
            ev.name = name_map[static_cast<std::size_t>(ev.name)];
            if (ev.group >= 0)
                ev.group = group_map[static_cast<std::size_t>(ev.group)];
        }
        for (auto& s : e.trace.summaries)
            for (auto& c : s.comm)
                if (c.group >= 0)
                    c.group = group_map[static_cast<std::size_t>(c.group)];
        const bool has_coords =
            e.where.tp >= 0 || e.where.cp >= 0 || e.where.pp >= 0 || e.where.dp >= 0;
        if (e.rank < 0 && has_coords) {
            pending.push_back(std::move(e));
            continue;
        }
        int rank = e.rank;
        if (rank < 0) {
            rank = static_cast<int>(ranks.size());
            warn(e.trace.file,
                 fmt::format("{}; taken as rank {} (its place among the inputs)",
                             e.no_rank_why.empty() ? std::string("no rank") : e.no_rank_why, rank));
        }
        place_rank(rank, std::move(e.trace), part.left_out);
    }
}

namespace {

void check_rank_bound(int rank, const std::string& file) {
    if (rank >= max_trace_ranks)
        throw wlb::input_error(file,
                               fmt::format("rank {} is beyond the {} ranks wlbtune reads (ranks "
                                           "are numbered from 0)",
                                           rank, max_trace_ranks));
}

} // namespace

bool job_trace::place_rank(int rank, rank_trace&& trace, std::string_view what) {
    check_rank_bound(rank, trace.file);
    if (static_cast<int>(ranks.size()) <= rank)
        ranks.resize(static_cast<std::size_t>(rank + 1));
    auto& rt = ranks[static_cast<std::size_t>(rank)];
    if (rt.present) {
        warn(trace.file,
             fmt::format("rank {} was already read from {}; {} left out", rank, rt.file, what));
        return false;
    }
    rt = std::move(trace);
    rt.present = true;
    return true;
}

std::int32_t job_trace::group_of(runtime::lane where, std::vector<int> members,
                                 std::string_view name) {
    std::string key = group_key(where, members, name);
    auto it = m_group_ids.find(key);
    if (it != m_group_ids.end())
        return it->second;
    const auto id = static_cast<std::int32_t>(groups.size());
    groups.push_back({std::string(name), where, std::move(members)});
    m_group_ids.emplace(std::move(key), id);
    return id;
}

std::int32_t job_trace::layout_group(runtime::lane where, int rank) {
    using runtime::axis;
    using runtime::lane;
    const auto& l = job_layout;
    const auto c = l.coords_of(rank);
    switch (where) {
    case lane::tp:
        return group_of(where, l.group_of(rank, axis::tp),
                        fmt::format("tp group cp{} pp{} dp{}", c.cp, c.pp, c.dp));
    case lane::cp:
        return group_of(where, l.group_of(rank, axis::cp),
                        fmt::format("cp group tp{} pp{} dp{}", c.tp, c.pp, c.dp));
    case lane::pp:
        return group_of(where, l.group_of(rank, axis::pp),
                        fmt::format("pipeline tp{} cp{} dp{}", c.tp, c.cp, c.dp));
    case lane::dp: {
        std::vector<int> members;
        for (int d = 0; d < l.dp(); ++d)
            for (int k = 0; k < l.cp(); ++k)
                members.push_back(l.rank_of({c.tp, k, c.pp, d}));
        return group_of(where, std::move(members),
                        fmt::format("dp x cp group tp{} pp{}", c.tp, c.pp));
    }
    case lane::compute:
    case lane::host:
        break;
    }
    return -1;
}

rank_trace* job_trace::claim_rank(int rank, const std::string& file, std::string_view what) {
    check_rank_bound(rank, file);
    if (static_cast<int>(ranks.size()) <= rank)
        ranks.resize(static_cast<std::size_t>(rank + 1));
    auto& rt = ranks[static_cast<std::size_t>(rank)];
    if (rt.present) {
        warn(file,
             fmt::format("rank {} was already read from {}; {} left out", rank, rt.file, what));
        return nullptr;
    }
    rt.present = true;
    rt.file = file;
    return &rt;
}

void job_trace::warn(std::string where, std::string message, std::string_view kind) {
    if (!kind.empty()) {
        const int n = ++m_warn_counts[std::string(kind)];
        if (n > max_warnings_per_kind)
            return;
    }
    warnings.push_back({std::move(where), std::move(message)});
}

void job_trace::finish_warnings() {
    for (const auto& [kind, n] : m_warn_counts)
        if (n > max_warnings_per_kind)
            warnings.push_back(
                {"(all inputs)", fmt::format("{} more warnings of the kind \"{}\" not shown",
                                             n - max_warnings_per_kind, kind)});
    m_warn_counts.clear();
}

std::size_t job_trace::event_count() const noexcept {
    std::size_t n = 0;
    for (const auto& r : ranks)
        n += static_cast<std::size_t>(r.events_read);
    return n;
}

std::size_t job_trace::record_count() const noexcept {
    std::size_t n = 0;
    for (const auto& r : ranks)
        n += r.events.size();
    return n;
}

step_index::step_index(const job_trace& job) : m_steps(job.steps) {
    m_order.resize(job.ranks.size());
    m_offsets.resize(job.ranks.size());
    for (std::size_t r = 0; r < job.ranks.size(); ++r) {
        const auto& events = job.ranks[r].events;
        auto& offsets = m_offsets[r];
        offsets.assign(m_steps.size() + 1, 0);
        std::vector<int> pos(events.size(), -1);
        for (std::size_t i = 0; i < events.size(); ++i) {
            pos[i] = step_position(events[i].step);
            if (pos[i] >= 0)
                ++offsets[static_cast<std::size_t>(pos[i]) + 1];
        }
        for (std::size_t k = 1; k < offsets.size(); ++k)
            offsets[k] += offsets[k - 1];
        auto& order = m_order[r];
        order.resize(offsets.back());
        std::vector<std::uint32_t> next(offsets.begin(), offsets.end() - 1);
        for (std::size_t i = 0; i < events.size(); ++i)
            if (pos[i] >= 0)
                order[next[static_cast<std::size_t>(pos[i])]++] = static_cast<std::uint32_t>(i);
    }
}

std::span<const std::uint32_t> step_index::events(int rank, std::int64_t step) const {
    const int p = step_position(step);
    if (p < 0 || rank < 0 || static_cast<std::size_t>(rank) >= m_order.size())
        return {};
    const auto& offsets = m_offsets[static_cast<std::size_t>(rank)];
    const auto& order = m_order[static_cast<std::size_t>(rank)];
    return std::span<const std::uint32_t>(order).subspan(offsets[static_cast<std::size_t>(p)],
                                                         offsets[static_cast<std::size_t>(p) + 1] -
                                                             offsets[static_cast<std::size_t>(p)]);
}

int step_index::step_position(std::int64_t step) const {
    auto it = std::lower_bound(m_steps.begin(), m_steps.end(), step);
    return it != m_steps.end() && *it == step ? static_cast<int>(it - m_steps.begin()) : -1;
}

} // namespace wlb::profiler
