#include "profiler/capture/inject/process_capture.hpp"

#include "profiler/capture/inject/private_files.hpp"
#include "profiler/capture/inject/trace_lines.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <queue>
#include <set>
#include <tuple>
#include <unistd.h>
#include <unordered_map>

namespace wlb::profiler {
namespace {

/// Writes `lines` to `path` through a temporary file (0600) and a rename; what failed, or "".
std::string write_lines(const std::string& path, const std::vector<runtime::trace_event>& events) {
    const std::string tmp = path + ".tmp." + std::to_string(::getpid());
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return tmp + ": cannot create: " + std::strerror(errno);
    std::FILE* f = ::fdopen(fd, "w");
    if (f == nullptr) {
        const int e = errno;
        ::close(fd);
        ::unlink(tmp.c_str());
        return tmp + ": " + std::strerror(e);
    }
    bool ok = true;
    for (const auto& e : events) {
        const std::string line = trace_line(e);
        if (std::fwrite(line.data(), 1, line.size(), f) != line.size() ||
            std::fputc('\n', f) == EOF) {
            ok = false;
            break;
        }
    }
    const int write_errno = errno;
    if (std::fclose(f) != 0)
        ok = false;
    if (!ok) {
        ::unlink(tmp.c_str());
        return tmp + ": cannot write: " + std::strerror(write_errno != 0 ? write_errno : ENOSPC);
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        const int e = errno;
        ::unlink(tmp.c_str());
        return path + ": cannot rename the temporary file into place: " + std::strerror(e);
    }
    return {};
}

/// The steps in `windows`: whole steps inside each window, the first `skip_steps` let pass,
/// then the first `steps` (0: all) taken.
std::vector<std::vector<std::int64_t>> kept_steps(const step_plan& plan,
                                                  const std::vector<capture_window>& windows) {
    std::vector<std::vector<std::int64_t>> out;
    for (const auto& w : windows) {
        auto& kept = out.emplace_back();
        const std::int64_t close = w.closed_ns < 0 ? INT64_MAX : w.closed_ns;
        const std::int64_t open = std::max(w.opened_ns, w.steps_from_ns);
        if (plan.source == step_source::none) {
            for (const auto& s : plan.steps)
                kept.push_back(s.step);
            continue;
        }
        std::int64_t skipped = 0;
        for (const auto& s : plan.steps) {
            if (s.start_ns < open || s.end_ns > close)
                continue;
            if (skipped < w.skip_steps) {
                ++skipped;
                continue;
            }
            kept.push_back(s.step);
            if (w.steps > 0 && static_cast<std::int64_t>(kept.size()) == w.steps)
                break;
        }
    }
    return out;
}

/// Links every activity that has none to the innermost kept range whose time holds its start
/// (sweep over both in start order).
std::uint64_t link_by_time(capture_batch& b) {
    std::unordered_map<std::uint32_t, std::uint64_t> linked;
    for (const auto& l : b.links)
        linked.emplace(l.correlation_id, l.context_id);
    std::vector<std::size_t> order;
    for (std::size_t i = 0; i < b.activities.size(); ++i) {
        const auto& a = b.activities[i];
        if (a.correlation_id == 0 || !linked.contains(a.correlation_id))
            order.push_back(i);
    }
    std::sort(order.begin(), order.end(), [&](std::size_t x, std::size_t y) {
        return b.activities[x].start_ns < b.activities[y].start_ns;
    });
    std::vector<const range_record*> ranges;
    for (const auto& r : b.ranges)
        ranges.push_back(&r);
    std::sort(ranges.begin(), ranges.end(),
              [](const auto* x, const auto* y) { return x->start_ns < y->start_ns; });
    std::set<std::tuple<std::int64_t, std::uint64_t, std::int64_t>> active; // start, ctx, end
    std::priority_queue<std::tuple<std::int64_t, std::int64_t, std::uint64_t>,
                        std::vector<std::tuple<std::int64_t, std::int64_t, std::uint64_t>>,
                        std::greater<>>
        ends; // end, start, ctx
    std::size_t next = 0;
    std::uint64_t made = 0;
    // Activities without a correlation id get one that no CUDA call uses (ids from the top).
    std::uint32_t spare = UINT32_MAX;
    for (const std::size_t i : order) {
        auto& a = b.activities[i];
        const std::int64_t t = a.start_ns;
        for (; next < ranges.size() && ranges[next]->start_ns <= t; ++next) {
            active.emplace(ranges[next]->start_ns, ranges[next]->context_id, ranges[next]->end_ns);
            ends.emplace(ranges[next]->end_ns, ranges[next]->start_ns, ranges[next]->context_id);
        }
        while (!ends.empty() && std::get<0>(ends.top()) <= t) {
            const auto [end, start, ctx] = ends.top();
            active.erase({start, ctx, end});
            ends.pop();
        }
        if (active.empty())
            continue;
        const auto context = std::get<1>(*active.rbegin());
        if (a.correlation_id == 0)
            a.correlation_id = spare--;
        b.links.push_back({a.correlation_id, context});
        ++made;
    }
    return made;
}

std::string window_text(const capture_window& w) {
    std::string s = "opened by " + w.opened_by;
    if (w.steps > 0)
        s += " for " + std::to_string(w.steps) + " steps";
    return s;
}

} // namespace

std::string step_names_text(const std::string& step_pattern) {
    if (!step_pattern.empty())
        return "named to match /" + step_pattern + "/";
    return "named ProfilerStep#N, step, train_step, training_step or iteration (with or "
           "without a number)";
}

process_recorder::process_recorder(inject_config config, process_meta meta)
    : m_config(std::move(config)), m_meta(std::move(meta)),
      m_nvtx(range_rules(m_config.step_range)) {}

void process_recorder::add(capture_batch&& records) {
    std::lock_guard lock(m_mutex);
    const auto room = m_config.max_records > m_activities ? m_config.max_records - m_activities : 0;
    if (static_cast<std::int64_t>(records.activities.size()) > room) {
        const auto over = records.activities.size() - static_cast<std::size_t>(room);
        records.activities.resize(static_cast<std::size_t>(room));
        if (m_over_limit == 0)
            m_notes.push_back("the record limit (" + std::to_string(m_config.max_records) +
                              " activity records, WLBTUNE_MAX_RECORDS) was reached; later "
                              "records are dropped and counted");
        m_over_limit += over;
        records.losses.dropped_records += over;
    }
    m_activities += static_cast<std::int64_t>(records.activities.size());
    m_records.append(std::move(records));
}

void process_recorder::set_cupti(std::string text) {
    std::lock_guard lock(m_mutex);
    m_meta.cupti = std::move(text);
}

void process_recorder::profiler_api(bool start, std::int64_t t_ns) {
    std::lock_guard lock(m_mutex);
    if (start) {
        ++m_api_starts;
        if (m_api_open < 0)
            m_api_open = t_ns;
        return;
    }
    if (m_api_open >= 0) {
        m_api_spans.push_back({static_cast<std::int64_t>(m_api_spans.size()), m_api_open, t_ns});
        m_api_open = -1;
    }
    ++m_api_stops;
}

std::int64_t process_recorder::profiler_api_starts() const {
    std::lock_guard lock(m_mutex);
    return m_api_starts;
}

std::int64_t process_recorder::profiler_api_stops() const {
    std::lock_guard lock(m_mutex);
    return m_api_stops;
}

void process_recorder::open_window(capture_window w) {
    std::lock_guard lock(m_mutex);
    m_windows.push_back(std::move(w));
}

void process_recorder::close_window(std::int64_t t_ns, std::string why) {
    std::lock_guard lock(m_mutex);
    if (!m_windows.empty() && m_windows.back().closed_ns < 0) {
        m_windows.back().closed_ns = t_ns;
        m_windows.back().closed_by = std::move(why);
    }
}

bool process_recorder::window_open() const {
    std::lock_guard lock(m_mutex);
    return !m_windows.empty() && m_windows.back().closed_ns < 0;
}

std::size_t process_recorder::window_count() const {
    std::lock_guard lock(m_mutex);
    return m_windows.size();
}

void process_recorder::note(std::string message) {
    std::lock_guard lock(m_mutex);
    if (std::find(m_notes.begin(), m_notes.end(), message) == m_notes.end())
        m_notes.push_back(std::move(message));
}

std::string process_recorder::file_stem() const {
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "rank_%05d.pid%ld", m_meta.who.rank, m_meta.pid);
    return buffer;
}

process_output process_recorder::convert() const {
    capture_batch records;
    std::vector<step_span> api_spans;
    std::vector<capture_window> windows;
    std::vector<std::string> notes;
    process_meta meta;
    {
        std::lock_guard lock(m_mutex);
        records.activities = m_records.activities;
        records.links = m_records.links;
        records.losses = m_records.losses;
        api_spans = m_api_spans;
        windows = m_windows;
        notes = m_notes;
        meta = m_meta;
    }
    const auto plan = choose_steps(m_config.steps_from, m_nvtx.step_spans(), api_spans,
                                   records.activities, step_names_text(m_config.step_range));
    auto steps = plan.steps;
    std::sort(steps.begin(), steps.end(),
              [](const step_span& a, const step_span& b) { return a.start_ns < b.start_ns; });
    // A time's step: the last step begun by then; past the end of the last step by more than
    // half its length (teardown), none.
    const auto step_at = [&](std::int64_t t) -> std::int64_t {
        auto it =
            std::upper_bound(steps.begin(), steps.end(), t,
                             [](std::int64_t x, const step_span& s) { return x < s.start_ns; });
        if (it == steps.begin())
            return -1;
        --it;
        if (std::next(it) == steps.end() &&
            t > it->end_ns + std::max<std::int64_t>(1'000'000, (it->end_ns - it->start_ns) / 2))
            return -1;
        return it->step;
    };
    // Ranges and contexts of the job's NVTX ranges; steps from another source become step
    // ranges of their own.
    capture_batch ranged = m_nvtx.resolve(step_at);
    if (plan.source != step_source::nvtx)
        for (const auto& s : steps) {
            const auto id = static_cast<std::uint64_t>(ranged.contexts.size() + 1);
            range_context c;
            c.step = s.step;
            ranged.contexts.emplace_back(id, c);
            ranged.ranges.push_back(
                {range_level::step, "step " + std::to_string(s.step), s.start_ns, s.end_ns, id});
        }
    records.ranges = std::move(ranged.ranges);
    records.contexts = std::move(ranged.contexts);
    // A link to a context outside every step (a range begun before the first) says nothing
    // about its kernel's step: such kernels are placed by time like unlinked ones.
    std::erase_if(records.links, [&](const context_link& l) {
        return l.context_id < 1 || l.context_id > records.contexts.size() ||
               records.contexts[l.context_id - 1].second.step < 0;
    });
    const std::uint64_t time_links = link_by_time(records);

    // Keep the activities of the steps the windows hold.
    const auto kept_per_window = kept_steps(plan, windows);
    std::set<std::int64_t> kept;
    for (const auto& k : kept_per_window)
        kept.insert(k.begin(), k.end());
    std::unordered_map<std::uint32_t, std::uint64_t> link_of;
    for (const auto& l : records.links)
        link_of.emplace(l.correlation_id, l.context_id);
    const auto step_of = [&](const device_activity& a) -> std::int64_t {
        if (auto it = link_of.find(a.correlation_id); a.correlation_id != 0 && it != link_of.end())
            if (it->second >= 1 && it->second <= records.contexts.size())
                if (const auto s = records.contexts[it->second - 1].second.step; s >= 0)
                    return s;
        return step_at(a.start_ns);
    };
    const auto captured = records.activities.size();
    std::erase_if(records.activities,
                  [&](const device_activity& a) { return !kept.contains(step_of(a)); });
    const auto outside = captured - records.activities.size();

    // NCCL streams off the compute lane.
    conversion_options options;
    options.rank = meta.who.rank;
    std::unordered_map<std::uint32_t, int> nccl_streams; // 1: p2p only, 2: collectives
    for (const auto& a : records.activities) {
        if (a.kind != activity_kind::kernel || a.name.rfind("nccl", 0) != 0)
            continue;
        const bool p2p =
            a.name.find("Send") != std::string::npos || a.name.find("Recv") != std::string::npos;
        auto& s = nccl_streams[a.stream];
        s = std::max(s, p2p ? 1 : 2);
    }
    for (const auto& [stream, what] : nccl_streams)
        options.stream_lanes[stream] = what == 2 ? runtime::lane::dp : runtime::lane::pp;

    process_output out;
    conversion_stats stats;
    out.events = activities_to_trace(records, options, stats);
    bool any_micro_batch = false, any_phase = false;
    for (const auto& e : out.events) {
        any_micro_batch = any_micro_batch || e.micro_batch >= 0;
        any_phase = any_phase || e.ph != runtime::phase::none;
    }
    const auto nv = m_nvtx.stats();
    auto& r = out.report;
    r["schema"] = process_capture_schema;
    r["session"] = m_config.session;
    r["rank"] = meta.who.rank;
    r["world_size"] = meta.who.world_size;
    r["local_rank"] = meta.who.local_rank;
    r["local_world_size"] = meta.who.local_world_size;
    r["launcher"] = meta.who.launcher;
    r["launcher_warnings"] = meta.who.warnings;
    r["pid"] = meta.pid;
    r["host"] = meta.host;
    r["command"] = meta.command;
    r["cupti"] = meta.cupti;
    r["mode"] = capture_mode_name(m_config.mode);
    r["file"] = file_stem() + ".jsonl";
    r["events"] = out.events.size();
    r["steps"] = {{"source", step_source_name(plan.source)},
                  {"description", plan.description},
                  {"found", plan.steps.size()},
                  {"kept", std::vector<std::int64_t>(kept.begin(), kept.end())},
                  {"partial_left_out", plan.partial_left_out}};
    auto& w = r["windows"] = nlohmann::json::array();
    for (std::size_t i = 0; i < windows.size(); ++i)
        w.push_back({{"opened_by", windows[i].opened_by},
                     {"closed_by", windows[i].closed_by},
                     {"opened_ns", windows[i].opened_ns},
                     {"closed_ns", windows[i].closed_ns},
                     {"steps_asked", windows[i].steps},
                     {"steps_kept", kept_per_window[i]},
                     {"text", window_text(windows[i])}});
    r["nvtx"] = {{"enabled", m_config.nvtx},
                 {"ranges", nv.ranges},
                 {"kept", nv.kept},
                 {"unmatched_pops", nv.unmatched_pops},
                 {"step_names", step_names_text(m_config.step_range)}};
    r["attribution"] = {{"micro_batches", any_micro_batch},
                        {"passes", any_phase},
                        {"linked_by_time", time_links},
                        {"outside_kept_steps", outside}};
    auto capture = capture_report_json("cupti-inject", stats, records);
    for (const auto& n : notes)
        capture["warnings"].push_back(n);
    r["capture"] = std::move(capture);
    return out;
}

std::string process_recorder::write() const {
    const auto out = convert();
    const std::string stem = m_config.capture_dir + "/" + file_stem();
    if (auto problem = write_lines(stem + ".jsonl", out.events); !problem.empty())
        return problem;
    return write_private_file(
        stem + std::string(process_report_suffix),
        out.report.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
}

} // namespace wlb::profiler
