#include "profiler/ingest/ingest.hpp"

#include "base/error.hpp"
#include "profiler/ingest/clock_align.hpp"
#include "profiler/ingest/collectives.hpp"
#include "profiler/ingest/json_input.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <map>
#include <set>

namespace wlb::profiler {
namespace {

namespace fs = std::filesystem;
using runtime::lane;

bool ends_with(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// "0-3, 7, 9-10"
std::string rank_ranges(const std::vector<int>& ranks) {
    std::string out;
    for (std::size_t i = 0; i < ranks.size();) {
        std::size_t j = i;
        while (j + 1 < ranks.size() && ranks[j + 1] == ranks[j] + 1)
            ++j;
        if (!out.empty())
            out += ", ";
        out += i == j ? fmt::format("{}", ranks[i]) : fmt::format("{}-{}", ranks[i], ranks[j]);
        i = j + 1;
    }
    return out;
}

struct input_file {
    std::string path;
    trace_format format;
};

std::vector<input_file> expand(const std::vector<std::string>& paths, trace_format forced) {
    std::vector<input_file> out;
    for (const auto& p : paths) {
        std::error_code ec;
        if (fs::is_directory(p, ec)) {
            if (fs::exists(fs::path(p) / "manifest.json")) {
                out.push_back({p, trace_format::wlbtune});
                continue;
            }
            std::vector<std::string> files;
            for (const auto& entry : fs::directory_iterator(p, ec)) {
                const std::string name = entry.path().filename().string();
                if (entry.is_regular_file() &&
                    (ends_with(name, ".json") || ends_with(name, ".json.gz")))
                    files.push_back(entry.path().string());
            }
            if (files.empty())
                throw input_error(p, "a directory with neither a wlbtune manifest.json nor any "
                                     "*.json / *.json.gz trace file");
            std::sort(files.begin(), files.end());
            for (auto& f : files)
                out.push_back({f, trace_format::automatic});
            continue;
        }
        if (!fs::exists(p, ec))
            throw input_error(p, "no such file or directory");
        out.push_back({p, trace_format::automatic});
    }
    for (auto& f : out)
        if (forced != trace_format::automatic) {
            if (f.format == trace_format::wlbtune && forced != trace_format::wlbtune)
                throw input_error(f.path, fmt::format("a wlbtune trace directory, but --format "
                                                      "{} was given",
                                                      trace_format_name(forced)));
            f.format = forced;
        } else if (f.format == trace_format::automatic) {
            f.format = detect_format(f.path);
        }
    return out;
}

// Settles the job's layout: --layout, else what the trace says, else the ranks' coordinates,
// else every rank a DP replica.
void settle_layout(job_trace& job, const ingest_options& o) {
    int seen = static_cast<int>(job.ranks.size());
    if (o.job_layout) {
        job.job_layout = *o.job_layout;
        job.layout_source = "--layout";
    } else if (!job.source_layout.empty()) {
        job.job_layout = runtime::layout::parse(
            job.source_layout,
            job.source_order.empty() ? runtime::layout::default_order : job.source_order);
        job.layout_source = job.format == "wlbtune" ? "trace manifest" : "trace metadata";
    } else if (!job.rank_coords.empty()) {
        runtime::coords deg{1, 1, 1, 1};
        for (const auto& [r, c] : job.rank_coords)
            for (auto a : runtime::all_axes)
                deg[a] = std::max(deg[a], c[a] + 1);
        const std::string spec =
            fmt::format("tp={},cp={},pp={},dp={}", deg.tp, deg.cp, deg.pp, deg.dp);
        // The order that maps the reported coordinates to the reported ranks.
        for (std::string_view order : {"tp-cp-pp-dp", "tp-cp-dp-pp", "tp-pp-cp-dp", "tp-dp-cp-pp",
                                       "cp-tp-pp-dp", "tp-pp-dp-cp"}) {
            const auto l = runtime::layout::parse(spec, order);
            bool fits = l.world_size() >= seen;
            for (const auto& [r, c] : job.rank_coords)
                fits = fits && r < l.world_size() && l.rank_of(c) == r;
            if (fits) {
                job.job_layout = l;
                job.layout_source =
                    fmt::format("rank coordinates in the metadata (order {})", order);
                break;
            }
        }
        if (job.layout_source.empty())
            throw input_error(fmt::format("the ranks' coordinates ({}) fit no axis order; give "
                                          "--layout",
                                          spec));
    } else {
        const int world = std::max(seen, job.source_world_size);
        job.job_layout = runtime::layout(1, 1, 1, std::max(1, world));
        job.layout_source = "none given: every rank taken as a DP replica (give --layout)";
        if (world > 1)
            job.warn("layout", fmt::format("the traces name no layout; taken as dp={} (every "
                                           "rank a DP replica). Give --layout "
                                           "tp=,cp=,pp=,dp= for the attribution",
                                           world));
    }
    const int world = job.job_layout.world_size();
    if (seen > world) {
        for (int r = world; r < seen; ++r)
            if (job.ranks[static_cast<std::size_t>(r)].present)
                job.warn(job.ranks[static_cast<std::size_t>(r)].file,
                         fmt::format("rank {} is outside layout {} ({} ranks); left out", r,
                                     job.job_layout.spec(), world));
        job.ranks.resize(static_cast<std::size_t>(world));
    }
    job.ranks.resize(static_cast<std::size_t>(world));
    for (const auto& [r, c] : job.rank_coords)
        if (r < world && job.job_layout.coords_of(r) != c)
            job.warn(fmt::format("rank {}", r),
                     fmt::format("its metadata says tp{} cp{} pp{} dp{}; layout {} (order {}) "
                                 "puts it elsewhere; the layout wins",
                                 c.tp, c.cp, c.pp, c.dp, job.job_layout.spec(),
                                 job.job_layout.order_string()));
}

// The lane of a group whose ranks are known, from the layout.
void classify_groups(job_trace& job) {
    const auto& l = job.job_layout;
    for (auto& g : job.groups) {
        if (g.ranks.empty())
            continue;
        if (g.ranks.back() >= l.world_size())
            continue;
        const int r0 = g.ranks.front();
        auto same = [&](std::vector<int> members) {
            std::sort(members.begin(), members.end());
            return members == g.ranks;
        };
        if (g.ranks.size() == 2 && g.where == lane::pp)
            continue; // a point-to-point pair
        if (l.tp() > 1 && same(l.group_of(r0, runtime::axis::tp)))
            g.where = lane::tp;
        else if (l.cp() > 1 && same(l.group_of(r0, runtime::axis::cp)))
            g.where = lane::cp;
        else if (l.pp() > 1 && same(l.group_of(r0, runtime::axis::pp)))
            g.where = lane::pp;
        else
            g.where = lane::dp; // DP, DP x CP, the world: gradient and parameter traffic
    }
}

void check_rank(job_trace& job, int r) {
    auto& rt = job.ranks[static_cast<std::size_t>(r)];
    auto& ev = rt.events;
    std::stable_sort(ev.begin(), ev.end(), [](const job_event& a, const job_event& b) {
        return a.start_ns < b.start_ns;
    });
    // Overlaps on one stream of one lane (a stream runs one thing at a time): clipped.
    std::map<std::pair<int, std::int32_t>, std::size_t> last;
    for (std::size_t i = 0; i < ev.size(); ++i) {
        auto& e = ev[i];
        auto [it, fresh] = last.try_emplace({static_cast<int>(e.where), e.stream}, i);
        if (fresh)
            continue;
        const auto& prev = ev[it->second];
        if (e.start_ns < prev.end_ns()) {
            const std::int64_t overlap = prev.end_ns() - e.start_ns;
            if (e.end_ns() <= prev.end_ns()) {
                job.warn(fmt::format("{}:rank {}", rt.file, r),
                         fmt::format("\"{}\" at {} ns lies inside \"{}\" on the same {} stream; "
                                     "left out",
                                     job.names[e.name], e.start_ns, job.names[prev.name],
                                     runtime::lane_name(e.where)),
                         "overlapping events");
                e.dur_ns = -1; // removed below
                continue;
            }
            job.warn(fmt::format("{}:rank {}", rt.file, r),
                     fmt::format("\"{}\" at {} ns overlaps \"{}\" by {} ns on the same {} "
                                 "stream; its start is moved to the end of the other",
                                 job.names[e.name], e.start_ns, job.names[prev.name], overlap,
                                 runtime::lane_name(e.where)),
                     "overlapping events");
            e.start_ns += overlap;
            e.dur_ns -= overlap;
        }
        it->second = i;
    }
    ev.erase(std::remove_if(ev.begin(), ev.end(), [](const job_event& e) { return e.dur_ns < 0; }),
             ev.end());
    if (rt.truncated) {
        std::int64_t last_step = rt.incomplete_step;
        if (last_step < 0)
            for (const auto& e : ev)
                last_step = std::max<std::int64_t>(last_step, e.step);
        if (last_step >= 0) {
            const auto before = ev.size();
            ev.erase(std::remove_if(ev.begin(), ev.end(),
                                    [&](const job_event& e) { return e.step == last_step; }),
                     ev.end());
            job.warn(rt.file, fmt::format("rank {}: the file ends early, so its last step {} is "
                                          "incomplete; its {} events are left out",
                                          r, last_step, before - ev.size()));
        }
    }
}

void finish(job_trace& job, const ingest_options& o) {
    settle_layout(job, o);
    classify_groups(job);
    const int world = job.job_layout.world_size();
    std::vector<int> missing;
    std::set<std::int64_t> all_steps;
    for (int r = 0; r < world; ++r) {
        auto& rt = job.ranks[static_cast<std::size_t>(r)];
        if (!rt.present) {
            missing.push_back(r);
            continue;
        }
        for (auto& e : rt.events) {
            if (e.group >= 0 && e.kind == runtime::event_kind::collective)
                e.where = job.groups[static_cast<std::size_t>(e.group)].where;
            else if (e.group < 0 && e.where != lane::compute && e.where != lane::host)
                e.group = job.layout_group(e.where, r);
        }
        check_rank(job, r);
        for (const auto& e : rt.events)
            if (e.step >= 0)
                all_steps.insert(e.step);
    }
    if (!missing.empty())
        job.warn("job", fmt::format("{} of {} ranks have no trace (ranks {}); the analysis uses "
                                    "the ranks present",
                                    missing.size(), world, rank_ranges(missing)));
    job.steps.assign(all_steps.begin(), all_steps.end());
    for (int r = 0; r < world; ++r) {
        const auto& rt = job.ranks[static_cast<std::size_t>(r)];
        if (!rt.present)
            continue;
        std::set<std::int64_t> mine;
        for (const auto& e : rt.events)
            if (e.step >= 0)
                mine.insert(e.step);
        std::vector<int> lacking;
        for (auto s : job.steps)
            if (!mine.count(s))
                lacking.push_back(static_cast<int>(s));
        if (!lacking.empty())
            job.warn(rt.file,
                     fmt::format("rank {} has no events in steps {} that other ranks "
                                 "have; those steps are analysed without it",
                                 r, rank_ranges(lacking)),
                     "missing steps");
    }
    const auto instances = match_collectives(job);
    auto clock = o.clock;
    if (job.source == "simulated" && clock.how == clock_option::mode::automatic)
        clock.how = clock_option::mode::none; // one simulated clock: nothing to align
    job.clock = align_clocks(job, instances, clock);
    if (job.source == "simulated" && o.clock.how == clock_option::mode::automatic)
        job.clock.method = "none (a simulated trace has one clock)";
    job.finish_warnings();
}

} // namespace

trace_format parse_trace_format(std::string_view text) {
    if (text == "auto")
        return trace_format::automatic;
    if (text == "wlbtune")
        return trace_format::wlbtune;
    if (text == "kineto")
        return trace_format::kineto;
    if (text == "megatron")
        return trace_format::megatron;
    throw usage_error(
        fmt::format("--format \"{}\": expected auto, wlbtune, kineto or megatron", text));
}

std::string_view trace_format_name(trace_format f) noexcept {
    switch (f) {
    case trace_format::automatic:
        return "auto";
    case trace_format::wlbtune:
        return "wlbtune";
    case trace_format::kineto:
        return "kineto";
    case trace_format::megatron:
        break;
    }
    return "megatron";
}

trace_format detect_format(const std::string& path) {
    const std::string head = read_head(path, 1 << 16);
    if (head.empty())
        throw input_error(path, "empty or unreadable");
    const auto has = [&](std::string_view s) {
        return head.find(s) != std::string::npos;
    };
    if (has("\"distributedInfo\"") || has("\"deviceProperties\"") || has("\"schemaVersion\"") ||
        has("\"cat\": \"kernel\"") || has("\"cat\":\"kernel\"") || has("ProfilerStep#") ||
        has("\"cuda_runtime\""))
        return trace_format::kineto;
    for (std::string_view timer : {"\"forward-compute\"", "\"backward-compute\"",
                                   "\"forward-recv\"", "\"forward-send\"", "\"optimizer\""})
        if (has(timer))
            return trace_format::megatron;
    if (has("\"traceEvents\""))
        return trace_format::kineto;
    throw input_error(path, "neither a Kineto trace nor a timer timeline (no traceEvents, no "
                            "Megatron timer names in its first 64 KiB); give --format");
}

job_trace ingest(const std::vector<std::string>& paths, const ingest_options& o) {
    if (paths.empty())
        throw usage_error("analyze needs at least one trace (a directory or files)");
    const auto inputs = expand(paths, o.format);
    job_trace job;
    std::set<std::string_view> formats;
    int next_rank = 0;
    for (const auto& in : inputs) {
        formats.insert(trace_format_name(in.format));
        switch (in.format) {
        case trace_format::wlbtune:
            read_wlbtune_dir(in.path, job);
            break;
        case trace_format::kineto:
            read_kineto_file(in.path, job, next_rank);
            break;
        case trace_format::megatron:
            read_timer_file(in.path, job, next_rank);
            break;
        case trace_format::automatic:
            break;
        }
        next_rank = static_cast<int>(job.ranks.size());
    }
    release_parse_buffers();
    if (formats.size() > 1)
        throw input_error(fmt::format("the inputs mix trace formats ({}); analyze one job's "
                                      "traces at a time",
                                      fmt::join(formats, ", ")));
    job.format = std::string(*formats.begin());
    finish(job, o);
    return job;
}

job_trace ingest_trace(const runtime::trace& t, const ingest_options& o) {
    job_trace job;
    job.format = "wlbtune";
    read_trace(t, job);
    finish(job, o);
    return job;
}

} // namespace wlb::profiler
