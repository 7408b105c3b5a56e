#include "profiler/ingest/ingest.hpp"

#include "base/error.hpp"
#include "profiler/ingest/clock_align.hpp"
#include "profiler/ingest/collectives.hpp"
#include "profiler/ingest/json_input.hpp"
#include "profiler/ingest/rank_condense.hpp"
#include "profiler/ingest/rank_names.hpp"
#include "runtime/parallel/layout.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <map>
#include <memory>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <mutex>
#include <optional>
#include <set>
#include <thread>

namespace wlb::profiler {
namespace {

namespace fs = std::filesystem;
using runtime::lane;

bool ends_with(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
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
                    (ends_with(name, ".json") || ends_with(name, ".json.gz") ||
                     ends_with(name, ".sqlite")))
                    files.push_back(entry.path().string());
            }
            if (files.empty())
                throw input_error(p, "a directory with neither a wlbtune manifest.json nor any "
                                     "*.json / *.json.gz / *.sqlite trace file");
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
            if ((f.format == trace_format::wlbtune) != (forced == trace_format::wlbtune))
                throw input_error(
                    f.path,
                    f.format == trace_format::wlbtune
                        ? fmt::format("a wlbtune trace directory, but --format {} was given",
                                      trace_format_name(forced))
                        : std::string("--format wlbtune reads trace directories (with "
                                      "manifest.json); this is not one"));
            f.format = forced;
        } else if (f.format == trace_format::automatic) {
            f.format = detect_format(f.path);
        }
    return out;
}

// Settles the job's layout: --layout, else what the trace says, else the ranks' coordinates
// (of ranks named by number, and of ranks named by coordinates only), else every rank a DP
// replica. Then places the ranks named by coordinates only.
void settle_layout(job_trace& job, const ingest_options& o) {
    int seen = static_cast<int>(job.ranks.size());
    if (o.job_layout) {
        job.job_layout = *o.job_layout;
        job.layout_source = "--layout";
    } else if (!job.source_layout.empty()) {
        try {
            job.job_layout = runtime::layout::parse(
                job.source_layout,
                job.source_order.empty() ? runtime::layout::default_order : job.source_order);
        } catch (const input_error& e) {
            throw input_error(job.files.empty() ? std::string("the trace") : job.files.front(),
                              fmt::format("metadata layout: {}", e.what()));
        }
        job.layout_source = job.format == "wlbtune" || job.format == "perfetto" ? "trace manifest"
                                                                                : "trace metadata";
    } else if (!job.rank_coords.empty() || !job.pending.empty()) {
        runtime::coords deg{1, 1, 1, 1};
        for (const auto& [r, c] : job.rank_coords)
            for (auto a : runtime::all_axes)
                deg[a] = std::max(deg[a], c[a] + 1);
        for (const auto& p : job.pending)
            for (auto a : runtime::all_axes)
                deg[a] = std::max(deg[a], p.where[a] + 1);
        const std::string spec =
            fmt::format("tp={},cp={},pp={},dp={}", deg.tp, deg.cp, deg.pp, deg.dp);
        // The order that maps the reported coordinates to the reported ranks (ranks named by
        // coordinates only constrain nothing: the default order).
        for (std::string_view order : {"tp-cp-pp-dp", "tp-cp-dp-pp", "tp-pp-cp-dp", "tp-dp-cp-pp",
                                       "cp-tp-pp-dp", "tp-pp-dp-cp"}) {
            const auto l = runtime::layout::parse(spec, order);
            bool fits = l.world_size() >= seen;
            for (const auto& [r, c] : job.rank_coords)
                fits = fits && r < l.world_size() && l.rank_of(c) == r;
            if (fits) {
                job.job_layout = l;
                job.layout_source =
                    job.rank_coords.empty()
                        ? fmt::format("the coordinates in process and thread names (order {})",
                                      order)
                        : fmt::format("rank coordinates in the metadata (order {})", order);
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
    // Ranks named by coordinates only: an axis they leave out is 0 where its degree is 1.
    const auto& l = job.job_layout;
    for (auto& p : job.pending) {
        for (auto a : runtime::all_axes) {
            if (p.where[a] >= 0)
                continue;
            if (l.degree(a) != 1)
                throw input_error(p.trace.file,
                                  fmt::format("{} names no {} coordinate and layout {} has {}={}; "
                                              "name it (\"{} rank N\") or give --rank-map",
                                              p.label, runtime::axis_name(a), l.spec(),
                                              runtime::axis_name(a), l.degree(a),
                                              runtime::axis_name(a)));
            p.where[a] = 0;
        }
        for (auto a : runtime::all_axes)
            if (p.where[a] >= l.degree(a))
                throw input_error(p.trace.file,
                                  fmt::format("{} has {} {}, outside layout {} (order {})", p.label,
                                              runtime::axis_name(a), p.where[a], l.spec(),
                                              l.order_string()));
        const int rank = l.rank_of(p.where);
        job.place_rank(rank, std::move(p.trace), "these events are");
    }
    job.pending.clear();
    seen = static_cast<int>(job.ranks.size());
    const int world = l.world_size();
    // Ranks beyond the layout are refused, not dropped: a layout too small for the traces
    // would attribute the job's time to a fraction of its ranks.
    for (int r = seen - 1; r >= world; --r)
        if (job.ranks[static_cast<std::size_t>(r)].present) {
            int present = 0;
            for (const auto& rt : job.ranks)
                present += rt.present ? 1 : 0;
            throw input_error(job.ranks[static_cast<std::size_t>(r)].file,
                              fmt::format("rank {} is outside layout {} (from {}; {} ranks): the "
                                          "traces hold {} ranks up to rank {}; give a layout "
                                          "with at least {} ranks",
                                          r, job.job_layout.spec(), job.layout_source, world,
                                          present, r, r + 1));
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

// Ranks without a trace. When every TP group holds the same TP ranks (often only TP rank 0
// records timers), that is said once: TP groups are attributed from the ranks present, as TP
// peers run in lock step. Otherwise the ranks missing are named.
void warn_missing(job_trace& job, const std::vector<int>& missing) {
    const auto& l = job.job_layout;
    const int world = l.world_size();
    if (l.tp() > 1) {
        std::optional<std::vector<int>> same; // the TP ranks present, when equal in every group
        bool uniform = true;
        for (int r = 0; r < world && uniform; ++r) {
            auto c = l.coords_of(r);
            if (c.tp != 0)
                continue;
            std::vector<int> here;
            for (int t = 0; t < l.tp(); ++t) {
                c.tp = t;
                if (job.ranks[static_cast<std::size_t>(l.rank_of(c))].present)
                    here.push_back(t);
            }
            if (!same)
                same = here;
            uniform = !here.empty() && here == *same;
        }
        if (uniform && same) {
            job.warn("job",
                     fmt::format("only TP rank{} {} of each TP group (tp={}) recorded a trace "
                                 "({} of {} ranks): each TP group is attributed from its ranks "
                                 "present (TP peers run in lock step); the breakdown and the "
                                 "stragglers cover the ranks present",
                                 same->size() > 1 ? "s" : "", runtime::rank_ranges(*same), l.tp(),
                                 world - static_cast<int>(missing.size()), world));
            return;
        }
    }
    job.warn("job", fmt::format("{} of {} ranks have no trace (ranks {}); the analysis uses "
                                "the ranks present",
                                missing.size(), world, runtime::rank_ranges(missing)));
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
        // A rank's group on each lane, found once (a group's key lists its ranks: building it
        // for each of a 16K-rank job's collectives took most of the ingestion).
        std::array<std::int32_t, runtime::lane_count> lane_group;
        lane_group.fill(-2);
        for (auto& e : rt.events) {
            if (e.group >= 0 && e.kind == runtime::event_kind::collective) {
                e.where = job.groups[static_cast<std::size_t>(e.group)].where;
            } else if (e.group < 0 && e.where != lane::compute && e.where != lane::host) {
                auto& g = lane_group[static_cast<std::size_t>(e.where)];
                if (g == -2)
                    g = job.layout_group(e.where, r);
                e.group = g;
            }
        }
        for (const auto& sm : rt.summaries)
            all_steps.insert(sm.step);
    }
    if (world > 0 && static_cast<int>(missing.size()) == world) {
        // Nothing to analyze: an empty breakdown with exit 0 would read as "no problem".
        std::string inputs;
        for (const auto& f : job.files)
            inputs += (inputs.empty() ? "" : ", ") + f;
        throw input_error(inputs.empty() ? std::string("analyze") : inputs,
                          fmt::format("no rank of the job has a trace{}",
                                      job.note.empty() ? "" : " (" + job.note + ")"));
    }
    if (!missing.empty())
        warn_missing(job, missing);
    job.steps.assign(all_steps.begin(), all_steps.end());
    for (int r = 0; r < world; ++r) {
        const auto& rt = job.ranks[static_cast<std::size_t>(r)];
        if (!rt.present)
            continue;
        std::set<std::int64_t> mine;
        for (const auto& sm : rt.summaries)
            mine.insert(sm.step);
        std::vector<int> lacking;
        for (auto s : job.steps)
            if (!mine.count(s))
                lacking.push_back(static_cast<int>(s));
        if (!lacking.empty())
            job.warn(rt.file,
                     fmt::format("rank {} has no events in steps {} that other ranks "
                                 "have; those steps are analysed without it",
                                 r, runtime::rank_ranges(lacking)),
                     "missing steps");
    }
    const auto instances = match_collectives(job);
    auto clock = o.clock;
    if (job.source == "simulated" && clock.how == clock_option::mode::automatic)
        clock.how = clock_option::mode::none; // one simulated clock: nothing to align
    job.clock = align_clocks(job, instances, clock);
    if (job.source == "simulated" && o.clock.how == clock_option::mode::automatic)
        job.clock.method = "none (a simulated trace has one clock)";
    if (!job.unknown_timers.empty()) {
        std::vector<std::pair<std::int64_t, std::string>> by_count;
        std::int64_t total = 0;
        for (const auto& [name, n] : job.unknown_timers) {
            by_count.emplace_back(-n, name);
            total += n;
        }
        std::sort(by_count.begin(), by_count.end());
        std::string list;
        for (std::size_t i = 0; i < by_count.size() && i < 8; ++i)
            list += fmt::format("{}\"{}\" ({})", list.empty() ? "" : ", ", by_count[i].second,
                                -by_count[i].first);
        if (by_count.size() > 8)
            list += fmt::format(", and {} more names", by_count.size() - 8);
        job.warn("timer names",
                 fmt::format("{} timers outside the Megatron timer vocabulary are counted as host "
                             "time (neither compute nor communication): {}",
                             total, list));
    }
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
    if (text == "nsys")
        return trace_format::nsys;
    if (text == "perfetto")
        return trace_format::perfetto;
    throw usage_error(fmt::format(
        "--format \"{}\": expected auto, wlbtune, kineto, megatron, nsys or perfetto", text));
}

std::string_view trace_format_name(trace_format f) noexcept {
    switch (f) {
    case trace_format::automatic:
        return "auto";
    case trace_format::wlbtune:
        return "wlbtune";
    case trace_format::kineto:
        return "kineto";
    case trace_format::nsys:
        return "nsys";
    case trace_format::perfetto:
        return "perfetto";
    case trace_format::megatron:
        break;
    }
    return "megatron";
}

trace_format detect_format(const std::string& path) {
    const std::string head = read_head(path, 1 << 16);
    if (head.empty())
        throw input_error(path, "empty or unreadable");
    if (head.size() >= 16 && std::memcmp(head.data(), "SQLite format 3", 16) == 0)
        return trace_format::nsys;
    const auto has = [&](std::string_view s) {
        return head.find(s) != std::string::npos;
    };
    // wlbtune's own Perfetto exports: marked (generator) or, before the mark, their otherData.
    if (has("\"generator\":\"wlbtune\"") ||
        (has("\"otherData\":{") && has("\"label\":") && has("\"layout\":") &&
         (has("\"tp_replicated\":") || has("\"label\":\"measured, with the ideal timeline"))))
        return trace_format::perfetto;
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
    throw input_error(path, "neither a Kineto trace, a timer timeline, a wlbtune Perfetto export "
                            "nor an Nsight Systems SQLite export (no traceEvents, no Megatron "
                            "timer names in its first 64 KiB); give --format");
}

int ingest_threads(int threads) {
    if (threads > 0)
        return threads;
    const unsigned n = std::thread::hardware_concurrency();
    return n > 0 ? static_cast<int>(n) : 1;
}

namespace {

// Reading a job allocates and frees the same large buffers (a file's kernels, launches and
// events, tens of MB) once per rank. glibc returns such blocks to the system at once and the
// next rank faults them in again, page by page: a third of the CPU time of reading a Kineto
// file on a virtual machine. Freed memory is kept for reuse instead.
void keep_freed_memory() {
#if defined(__GLIBC__)
    static const bool once = [] {
        mallopt(M_MMAP_THRESHOLD, 64 << 20);
        mallopt(M_TRIM_THRESHOLD, 512 << 20);
        return true;
    }();
    (void)once;
#endif
}

// One unit of reading: a file, or one rank file of a wlbtune directory.
struct read_task {
    trace_format format = trace_format::automatic;
    std::string path;
    const wlbtune_dir* dir = nullptr;
    int rank = -1;
};

std::unique_ptr<trace_part> run_task(const read_task& t, const rank_map& map, bool keep_events) {
    auto part = std::make_unique<trace_part>();
    part->format = std::string(trace_format_name(t.format));
    switch (t.format) {
    case trace_format::wlbtune:
        t.dir->read_rank(t.rank, *part);
        break;
    case trace_format::kineto:
        read_kineto_file(t.path, *part, map);
        break;
    case trace_format::megatron:
        read_timer_file(t.path, *part, map);
        break;
    case trace_format::nsys:
        read_nsys_file(t.path, *part, map);
        break;
    case trace_format::perfetto:
        read_perfetto_file(t.path, *part);
        break;
    case trace_format::automatic:
        break;
    }
    for (auto& e : part->ranks)
        condense_rank(e.trace, *part, e.rank >= 0 ? fmt::format("rank {}", e.rank) : e.label,
                      keep_events);
    return part;
}

// Reads every task on `threads` threads and absorbs the parts into `job` in task order. A
// worker runs at most `window` tasks ahead of the merge, so parts waiting to be merged stay few.
void read_all(const std::vector<read_task>& tasks, job_trace& job, const rank_map& map,
              bool keep_events, int threads) {
    const std::size_t n = tasks.size();
    threads = std::max(1, std::min<int>(threads, static_cast<int>(n)));
    if (threads == 1) {
        for (const auto& t : tasks)
            job.absorb(std::move(*run_task(t, map, keep_events)));
        release_parse_buffers();
        return;
    }
    struct slot {
        std::unique_ptr<trace_part> part;
        std::exception_ptr error;
        bool done = false;
    };
    std::vector<slot> slots(n);
    std::mutex mu;
    std::condition_variable cv;
    std::size_t next = 0, merged = 0;
    bool stop = false;
    const std::size_t window = static_cast<std::size_t>(threads) * 4;
    auto worker = [&] {
        for (;;) {
            std::size_t i = 0;
            {
                std::unique_lock lock(mu);
                cv.wait(lock, [&] { return stop || next >= n || next < merged + window; });
                if (stop || next >= n)
                    break;
                i = next++;
            }
            std::unique_ptr<trace_part> part;
            std::exception_ptr error;
            try {
                part = run_task(tasks[i], map, keep_events);
            } catch (...) {
                error = std::current_exception();
            }
            {
                std::lock_guard lock(mu);
                slots[i].part = std::move(part);
                slots[i].error = error;
                slots[i].done = true;
            }
            cv.notify_all();
        }
        release_parse_buffers();
    };
    std::vector<std::thread> pool;
    pool.reserve(static_cast<std::size_t>(threads));
    for (int k = 0; k < threads; ++k)
        pool.emplace_back(worker);
    std::exception_ptr failed;
    for (std::size_t i = 0; i < n; ++i) {
        std::unique_ptr<trace_part> part;
        {
            std::unique_lock lock(mu);
            cv.wait(lock, [&] { return slots[i].done; });
            if (slots[i].error) {
                failed = slots[i].error;
                stop = true;
            }
            part = std::move(slots[i].part);
        }
        if (failed)
            break;
        try {
            job.absorb(std::move(*part));
        } catch (...) {
            failed = std::current_exception();
        }
        {
            std::lock_guard lock(mu);
            merged = i + 1;
            if (failed)
                stop = true;
        }
        cv.notify_all();
        if (failed)
            break;
    }
    {
        std::lock_guard lock(mu);
        stop = true;
    }
    cv.notify_all();
    for (auto& t : pool)
        t.join();
    if (failed)
        std::rethrow_exception(failed);
}

} // namespace

job_trace ingest(const std::vector<std::string>& paths, const ingest_options& o) {
    if (paths.empty())
        throw usage_error("analyze needs at least one trace (a directory or files)");
    keep_freed_memory();
    const auto inputs = expand(paths, o.format);
    std::set<std::string_view> formats;
    for (const auto& in : inputs)
        formats.insert(trace_format_name(in.format));
    if (formats.size() > 1)
        throw input_error(fmt::format("the inputs mix trace formats ({}); analyze one job's "
                                      "traces at a time",
                                      fmt::join(formats, ", ")));
    const auto map = rank_map::parse(o.rank_map);
    job_trace job;
    job.format = std::string(*formats.begin());
    std::vector<std::unique_ptr<wlbtune_dir>> dirs;
    std::vector<read_task> tasks;
    for (const auto& in : inputs) {
        if (in.format != trace_format::wlbtune) {
            tasks.push_back({in.format, in.path, nullptr, -1});
            continue;
        }
        dirs.push_back(std::make_unique<wlbtune_dir>(in.path));
        dirs.back()->read_meta(job);
        for (int r : dirs.back()->ranks())
            tasks.push_back({in.format, in.path, dirs.back().get(), r});
    }
    read_all(tasks, job, map, o.keep_events, ingest_threads(o.threads));
    for (const auto& d : dirs)
        d->finish(job);
    finish(job, o);
    return job;
}

job_trace ingest_trace(const runtime::trace& t, const ingest_options& o) {
    job_trace job;
    job.format = "wlbtune";
    read_trace_meta(t, job);
    for (std::size_t r = 0; r < t.ranks.size(); ++r) {
        if (t.ranks[r].empty())
            continue;
        trace_part part;
        add_wlbtune_events(t.ranks[r], static_cast<int>(r), fmt::format("(in memory) rank {}", r),
                           part);
        for (auto& e : part.ranks)
            condense_rank(e.trace, part, fmt::format("rank {}", e.rank), o.keep_events);
        job.absorb(std::move(part));
    }
    finish(job, o);
    return job;
}

} // namespace wlb::profiler
