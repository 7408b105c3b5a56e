// Megatron-style timer timelines (docs/formats.md, "Timer timelines"): Chrome-trace JSON whose
// events are Megatron-LM timers, one file per rank or one file for many.
//
//   {"traceEvents": [
//      {"ph": "M", "pid": 5, "name": "process_name", "args": {"name": "rank 5 tp1 cp0 pp1 dp0"}},
//      {"ph": "M", "pid": 5, "tid": 2, "name": "thread_name", "args": {"name": "compute"}},
//      {"ph": "X", "pid": 5, "tid": 0, "name": "forward-compute", "ts": 1234.5, "dur": 80.25,
//       "args": {"step": 3, "micro_batch": 0, "virtual_stage": 0}},
//      {"ph": "B", ...}, {"ph": "E", ...}, ...],
//    "metadata": {"layout": "tp=2,cp=1,pp=2,dp=2", "order": "tp-cp-pp-dp"}}
//
// A track is a (process, thread). Its rank comes from --rank-map, then the thread's and the
// process's names (profiler/ingest/rank_names.hpp: "rank N", "tpA cpB ppC dpD", "TP rank A, PP
// rank C" and their spellings), then args.rank on its events; a process per DP rank with threads
// "PP rank 1, TP rank 0, compute" gives coordinates only, and the global rank follows from them
// and the layout once every input is read. Tracks of one rank are merged. A file whose only
// process names no rank is the rank in its file name (rankN), else its place among the inputs;
// a file of several processes where a track cannot be placed is an error that lists the names
// found and points at --rank-map.
//
// Steps come from args.step (or "iteration"); where they are missing, a step ends with each
// "optimizer" timer. Micro-batches come from args.micro_batch (or "microbatch", "mb"); a
// communication timer without one takes its args.seq_id (the sequence index of the micro-batch
// it carries); where neither is given, they are counted per step, model chunk and pass. A send
// and a receive on the pipeline lane that overlap (Megatron's combined send-forward-recv-
// backward recorded as two timers) are one transfer: one receive over both. Timers outside the
// vocabulary (profiler/ingest/megatron_timers.hpp) are host time, summarized in one warning for
// the job.
#include "base/error.hpp"
#include "profiler/ingest/chrome_json.hpp"
#include "profiler/ingest/ingest.hpp"
#include "profiler/ingest/megatron_timers.hpp"
#include "profiler/ingest/rank_names.hpp"

#include <algorithm>
#include <array>
#include <filesystem>
#include <fmt/ranges.h>
#include <limits>
#include <map>
#include <regex>
#include <set>
#include <unordered_map>

namespace wlb::profiler {
namespace {

namespace od = simdjson::ondemand;
using chrome::int_or;
using chrome::micros_to_ns;
using chrome::string_or_token;
using chrome::trim;

struct pending {
    std::int64_t ts_ns = 0;
    std::int64_t dur_ns = 0;
    std::int64_t event = 0;
    std::int32_t name = 0;
    std::int32_t tid = 0;
    std::int32_t step = -1;
    std::int32_t micro_batch = -1;
    std::int32_t seq_id = -1;
    std::int32_t virtual_stage = -1;
    std::int32_t arg_rank = -1;
};

using track_id = std::pair<std::int64_t, std::int64_t>; // (pid, tid)

struct open_timer {
    std::int32_t name = 0;
    std::int64_t ts_ns = 0;
    pending args;
};

class timer_file {
public:
    timer_file(const std::string& path, trace_part& part, const rank_map& map)
        : m_path(path), m_job(part), m_map(map) {}

    void read() {
        loaded_text& in = chrome::buffers().text;
        load_text_file(m_path, in);
        m_job.files.push_back(m_path);
        m_job.input_bytes += in.file_bytes;
        m_job.left_out = "these timers are";
        if (in.problem)
            m_job.warn(m_path, *in.problem + "; reading the events before the cut");
        chrome::parse_recovering(
            in.text, m_path, m_job, m_progress,
            [&](od::document& doc, const char* begin, chrome::progress& p) { walk(doc, begin, p); },
            [&] {
                m_tracks.clear();
                m_open.clear();
            });
        const bool truncated = in.problem.has_value() || m_progress.truncated;
        resolve(truncated);
    }

private:
    void walk(od::document& doc, const char* begin, chrome::progress& p) {
        m_begin = begin;
        if (doc.type() == od::json_type::array) {
            for (auto ev : doc.get_array()) {
                od::object o = ev.get_object();
                event(o);
                chrome::advanced(doc, begin, p);
            }
            return;
        }
        od::object top = doc.get_object();
        for (auto field : top) {
            od::raw_json_string key = field.key();
            if (key == "traceEvents") {
                for (auto ev : field.value().get_array()) {
                    od::object o = ev.get_object();
                    event(o);
                    chrome::advanced(doc, begin, p);
                }
            } else if (key == "metadata" || key == "otherData") {
                od::object meta = field.value().get_object();
                for (auto f : meta) {
                    od::raw_json_string k = f.key();
                    if (k == "layout")
                        m_job.source_layout = std::string(f.value().get_string().value());
                    else if (k == "order")
                        m_job.source_order = std::string(f.value().get_string().value());
                    else if (k == "world_size") {
                        od::value v = f.value();
                        const auto world = int_or(v, 0);
                        if (world < 1 || world > max_trace_ranks)
                            throw input_error(m_path, fmt::format("metadata world_size {} is "
                                                                  "outside 1 .. {}",
                                                                  world, max_trace_ranks));
                        m_job.source_world_size =
                            std::max(m_job.source_world_size, static_cast<int>(world));
                    }
                }
            }
        }
    }

    // "FILE:LINE" of the event being read: the line after the previous event's end.
    [[nodiscard]] std::string event_where() const {
        std::int64_t line = 1;
        const char* c = m_begin;
        for (const char* end = m_begin + m_progress.last_byte; c < end; ++c)
            line += *c == '\n';
        for (; *c == ' ' || *c == '\t' || *c == '\r' || *c == '\n' || *c == ','; ++c)
            line += *c == '\n';
        return fmt::format("{}:{}", m_path, line);
    }

    // A step number must be a whole number 0 .. 2^31-1: a negative step or one past int32 would
    // be taken for "no step" or wrap, and move the event into another step.
    std::int32_t step_arg(od::value& v, std::string_view field) const {
        if (v.type() != od::json_type::number)
            return -1; // not a number: the event names no step
        std::int64_t step = 0;
        if (v.get_int64().get(step) != simdjson::SUCCESS || step < 0 ||
            step > std::numeric_limits<std::int32_t>::max())
            throw input_error(event_where(),
                              fmt::format("\"{}\" is {}: expected a step number 0 .. {}", field,
                                          trim(v.raw_json_token()),
                                          std::numeric_limits<std::int32_t>::max()));
        return static_cast<std::int32_t>(step);
    }

    // Times beyond 2^62 ns (146 years) are refused: their ends and differences would overflow.
    void check_time(bool parsed, std::int64_t ns, std::string_view field,
                    std::string_view token) const {
        constexpr std::int64_t most_ns = std::int64_t{1} << 62;
        const auto t = trim(token);
        const bool numeric =
            !t.empty() && (t.front() == '-' || (t.front() >= '0' && t.front() <= '9'));
        if ((parsed && (ns > most_ns || ns < -most_ns)) || (!parsed && numeric))
            throw input_error(
                event_where(),
                fmt::format("\"{}\" is {}: expected microseconds within +-2^62 ns", field, t));
    }

    void event(od::object& obj) {
        std::string_view ph, name;
        std::int64_t ts = 0, dur = -1, pid = 0, tid = 0;
        bool have_ts = false;
        pending args;
        std::string meta_name;
        for (auto f : obj) {
            od::raw_json_string k = f.key();
            if (k == "ph") {
                ph = f.value().get_string().value();
            } else if (k == "name") {
                name = f.value().get_string().value();
            } else if (k == "ts") {
                have_ts = micros_to_ns(f.value().raw_json_token(), ts);
                check_time(have_ts, ts, "ts", f.value().raw_json_token());
            } else if (k == "dur") {
                check_time(micros_to_ns(f.value().raw_json_token(), dur), dur, "dur",
                           f.value().raw_json_token());
            } else if (k == "pid") {
                od::value v = f.value();
                pid = int_or(v, 0);
            } else if (k == "tid") {
                od::value v = f.value();
                tid = int_or(v, 0);
            } else if (k == "args") {
                od::object a = f.value().get_object();
                for (auto af : a) {
                    od::raw_json_string ak = af.key();
                    od::value v = af.value();
                    if (ak == "step" || ak == "iteration")
                        args.step = step_arg(v, ak == "step" ? "args.step" : "args.iteration");
                    else if (ak == "micro_batch" || ak == "microbatch" || ak == "mb")
                        args.micro_batch = static_cast<std::int32_t>(int_or(v, -1));
                    else if (ak == "seq_id")
                        args.seq_id = static_cast<std::int32_t>(int_or(v, -1));
                    else if (ak == "virtual_stage" || ak == "model_chunk" || ak == "vp_stage" ||
                             ak == "chunk")
                        args.virtual_stage = static_cast<std::int32_t>(int_or(v, -1));
                    else if (ak == "rank")
                        args.arg_rank = static_cast<std::int32_t>(int_or(v, -1));
                    else if (ak == "name" && v.type() == od::json_type::string)
                        meta_name = std::string(v.get_string().value());
                }
            }
        }
        if (ph == "M") {
            if (name == "process_name")
                m_process_names[pid] = meta_name;
            else if (name == "thread_name")
                m_thread_names[{pid, tid}] = meta_name;
            return;
        }
        if (ph == "X") {
            if (!have_ts || dur < 0) {
                m_job.warn(fmt::format("{}:event {}", m_path, m_progress.events),
                           fmt::format("timer \"{}\" has a negative or missing ts or dur; left "
                                       "out",
                                       name),
                           "negative duration");
                return;
            }
            args.ts_ns = ts;
            args.dur_ns = dur;
            args.name = m_job.names.intern(name);
            args.tid = static_cast<std::int32_t>(tid);
            args.event = m_progress.events;
            m_tracks[{pid, tid}].push_back(args);
            return;
        }
        if (ph == "B" && have_ts) {
            open_timer t;
            t.name = m_job.names.intern(name);
            t.ts_ns = ts;
            t.args = args;
            m_open[{pid, tid}].push_back(t);
            return;
        }
        if (ph == "E" && have_ts) {
            auto& stack = m_open[{pid, tid}];
            const std::int32_t id = name.empty() ? -1 : m_job.names.intern(name);
            // An "E" closes the innermost open timer (of its name, when it gives one).
            for (auto it = stack.rbegin(); it != stack.rend(); ++it) {
                if (id >= 0 && it->name != id)
                    continue;
                pending p = it->args;
                if (args.step >= 0)
                    p.step = args.step;
                if (args.micro_batch >= 0)
                    p.micro_batch = args.micro_batch;
                if (args.seq_id >= 0)
                    p.seq_id = args.seq_id;
                p.ts_ns = it->ts_ns;
                p.dur_ns = ts - it->ts_ns;
                p.name = it->name;
                p.tid = static_cast<std::int32_t>(tid);
                p.event = m_progress.events;
                if (p.dur_ns < 0)
                    m_job.warn(fmt::format("{}:event {}", m_path, m_progress.events),
                               fmt::format("timer \"{}\" ends before it begins; left out",
                                           m_job.names[p.name]),
                               "negative duration");
                else
                    m_tracks[{pid, tid}].push_back(p);
                stack.erase(std::next(it).base());
                return;
            }
            m_job.warn(fmt::format("{}:event {}", m_path, m_progress.events),
                       fmt::format("\"E\" of \"{}\" closes no open timer", name), "unmatched E");
        }
    }

    int rank_from_file_name() const {
        static const std::regex re(R"(rank[_-]?(\d+))", std::regex::icase);
        std::smatch m;
        const std::string base = std::filesystem::path(m_path).filename().string();
        return std::regex_search(base, m, re) ? saturated_int(m[1].str()) : -1;
    }

    std::string track_text(const track_id& t) const {
        std::string out = fmt::format("process {}", t.first);
        if (auto it = m_process_names.find(t.first); it != m_process_names.end())
            out += fmt::format(" (\"{}\")", it->second);
        out += fmt::format(", thread {}", t.second);
        if (auto it = m_thread_names.find(t); it != m_thread_names.end())
            out += fmt::format(" (\"{}\")", it->second);
        return out;
    }

    // What the rank map, the names and the events say about a track.
    name_coords track_coords(const track_id& t, const std::vector<pending>& events) const {
        const auto pn = m_process_names.find(t.first);
        const auto tn = m_thread_names.find(t);
        const std::string_view pname =
            pn != m_process_names.end() ? std::string_view(pn->second) : std::string_view();
        const std::string_view tname =
            tn != m_thread_names.end() ? std::string_view(tn->second) : std::string_view();
        const std::string file = std::filesystem::path(m_path).filename().string();
        auto nc = m_map.apply(pname, t.first, tname, t.second, file);
        try {
            nc.fill_from(coords_in_name(tname));
            nc.fill_from(coords_in_name(pname));
        } catch (const input_error& e) {
            throw input_error(m_path, e.what());
        }
        if (nc.rank < 0)
            for (const auto& p : events)
                if (p.arg_rank >= 0) {
                    nc.rank = p.arg_rank;
                    break;
                }
        return nc;
    }

    [[noreturn]] void no_rank(const std::vector<track_id>& unplaced) const {
        std::vector<std::string> procs, threads;
        for (const auto& [pid, name] : m_process_names)
            if (procs.size() < 8)
                procs.push_back(fmt::format("{} \"{}\"", pid, name));
        for (const auto& [id, name] : m_thread_names)
            if (threads.size() < 8)
                threads.push_back(fmt::format("{}/{} \"{}\"", id.first, id.second, name));
        std::vector<std::string> which;
        for (std::size_t i = 0; i < unplaced.size() && i < 4; ++i)
            which.push_back(track_text(unplaced[i]));
        throw input_error(
            m_path,
            fmt::format("cannot tell the rank of {} of its {} tracks ({}{}). Process names found: "
                        "{}; thread names found: {}. Name ranks \"rank N\", \"tpA cpB ppC dpD\" or "
                        "\"TP rank A, PP rank C\" (with a DP rank in the process name), or map "
                        "these names with --rank-map, e.g. --rank-map 'process:worker(\\d+) -> "
                        "rank=$1' (docs/formats.md, \"Rank map\")",
                        unplaced.size(), m_tracks.size(), fmt::join(which, "; "),
                        unplaced.size() > which.size() ? "; ..." : "",
                        procs.empty() ? std::string("none")
                                      : fmt::format("{}", fmt::join(procs, ", ")),
                        threads.empty() ? std::string("none")
                                        : fmt::format("{}", fmt::join(threads, ", "))));
    }

    void resolve(bool truncated) {
        for (const auto& [key, stack] : m_open)
            for (const auto& t : stack)
                m_job.warn(m_path,
                           fmt::format("timer \"{}\" of process {} begins at {} ns and "
                                       "never ends; left out",
                                       m_job.names[t.name], key.first, t.ts_ns),
                           "unclosed timer");
        // Tracks by what they name: a rank, coordinates, or nothing.
        struct target {
            int rank = -1;
            runtime::coords where{-1, -1, -1, -1};
            std::string label;
            std::vector<pending> events;
        };
        std::vector<target> targets;
        std::map<int, std::size_t> by_rank;
        std::map<std::array<int, 4>, std::size_t> by_coords;
        std::vector<track_id> unplaced;
        std::set<std::int64_t> pids;
        for (auto& [id, events] : m_tracks) {
            if (events.empty())
                continue;
            pids.insert(id.first);
            const auto nc = track_coords(id, events);
            std::size_t k = 0;
            if (nc.rank >= 0) {
                auto [it, fresh] = by_rank.try_emplace(nc.rank, targets.size());
                if (fresh)
                    targets.push_back({nc.rank, nc.where, track_text(id), {}});
                k = it->second;
                const auto& w = nc.where;
                if (w.tp >= 0 && w.cp >= 0 && w.pp >= 0 && w.dp >= 0)
                    m_job.rank_coords[nc.rank] = w;
            } else if (nc.any_coords()) {
                const std::array<int, 4> key{nc.where.tp, nc.where.cp, nc.where.pp, nc.where.dp};
                auto [it, fresh] = by_coords.try_emplace(key, targets.size());
                if (fresh)
                    targets.push_back({-1, nc.where, track_text(id), {}});
                k = it->second;
            } else {
                unplaced.push_back(id);
                continue;
            }
            auto& into = targets[k].events;
            into.insert(into.end(), events.begin(), events.end());
        }
        if (!unplaced.empty()) {
            // One process naming nothing: the file is one rank (the file name, else its place).
            if (!targets.empty() || pids.size() > 1)
                no_rank(unplaced);
            target t;
            const std::string file = std::filesystem::path(m_path).filename().string();
            const auto by_map = m_map.apply("", -1, "", -1, file);
            t.rank = by_map.rank >= 0 ? by_map.rank : rank_from_file_name();
            t.where = by_map.where;
            t.label = m_path;
            for (const auto& id : unplaced) {
                auto& ev = m_tracks[id];
                t.events.insert(t.events.end(), ev.begin(), ev.end());
            }
            targets.push_back(std::move(t));
        }
        for (auto& t : targets) {
            auto& entry = m_job.add_rank(t.rank, m_path);
            entry.where = t.rank >= 0 ? runtime::coords{-1, -1, -1, -1} : t.where;
            entry.label = t.label;
            entry.no_rank_why = "no rank in the process or thread names, the events or the file "
                                "name";
            add_rank(entry, t.events, truncated);
        }
    }

    void add_rank(trace_part::entry& entry, std::vector<pending>& events, bool truncated) {
        auto& rt = entry.trace;
        rt.truncated = truncated;
        m_job.per_layer_events = false;
        std::sort(events.begin(), events.end(), [](const pending& a, const pending& b) {
            return a.ts_ns != b.ts_ns ? a.ts_ns < b.ts_ns : a.dur_ns > b.dur_ns;
        });
        // Steps where the timers do not say: a step ends with each optimizer timer.
        const bool any_step =
            std::any_of(events.begin(), events.end(), [](const pending& p) { return p.step >= 0; });
        std::int32_t counted_step = 0;
        std::int64_t optimizer_end = -1;
        std::map<std::tuple<int, int, int, std::int32_t>, int> mb_count;
        bool inferred_mb = false;
        std::int64_t last_optimizer_end = -1;
        const std::string who = entry.rank >= 0 ? fmt::format("rank {}", entry.rank) : entry.label;
        for (auto& p : events) {
            const std::string& name = m_job.names[p.name];
            const auto meaning = megatron_timer(name);
            if (!any_step) {
                if (optimizer_end >= 0 && p.ts_ns >= optimizer_end) {
                    ++counted_step;
                    optimizer_end = -1;
                }
                p.step = counted_step;
                if (name == "optimizer")
                    optimizer_end = p.ts_ns + p.dur_ns;
            }
            if (meaning && (meaning->envelope))
                continue;
            if (meaning && meaning->sub_timer && last_optimizer_end >= p.ts_ns + p.dur_ns)
                continue; // inside the optimizer timer already counted
            job_event e;
            e.start_ns = p.ts_ns;
            e.dur_ns = p.dur_ns;
            e.name = p.name;
            e.step = p.step;
            e.stream = p.tid;
            e.virtual_stage = static_cast<std::int16_t>(p.virtual_stage);
            if (meaning) {
                e.where = meaning->where;
                e.kind = meaning->kind;
                e.ph = meaning->ph;
                e.work = meaning->work;
                if (meaning->per_micro_batch && e.where != runtime::lane::host) {
                    // A transfer without a micro-batch id carries its sequence index.
                    if (p.micro_batch < 0 && e.where != runtime::lane::compute && p.seq_id >= 0)
                        p.micro_batch = p.seq_id;
                    if (p.micro_batch < 0) {
                        // The k-th forward (backward) of a step and model chunk is micro-batch k.
                        const auto key = std::make_tuple(static_cast<int>(e.step),
                                                         static_cast<int>(p.virtual_stage),
                                                         static_cast<int>(e.ph), p.name);
                        p.micro_batch = mb_count[key]++;
                        inferred_mb = true;
                    }
                    e.micro_batch = static_cast<std::int16_t>(p.micro_batch);
                }
                if (name == "optimizer")
                    last_optimizer_end = p.ts_ns + p.dur_ns;
            } else {
                e.where = runtime::lane::host;
                e.kind = runtime::event_kind::other;
                ++m_job.unknown_timers[name];
            }
            rt.events.push_back(e);
        }
        combine_exchanges(rt, who);
        if (!any_step)
            m_job.warn(m_path, fmt::format("{}: the timers carry no step ids; steps counted by "
                                           "optimizer timers ({} steps)",
                                           who, counted_step + 1));
        if (inferred_mb)
            m_job.warn(m_path,
                       fmt::format("{}: some per-micro-batch timers carry no micro-batch id (nor "
                                   "seq_id); numbered in order per step, model chunk and pass",
                                   who),
                       "inferred micro-batch");
    }

    // A send and a receive on the pipeline lane that overlap are one exchange (Megatron's
    // send_forward_recv_backward and its mirror, recorded as two timers): one receive spanning
    // both, with the receive's micro-batch and pass, as the combined timers are read.
    void combine_exchanges(rank_trace& rt, const std::string& who) {
        using runtime::event_kind;
        auto& ev = rt.events;
        std::vector<std::size_t> pp;
        for (std::size_t i = 0; i < ev.size(); ++i)
            if (ev[i].where == runtime::lane::pp &&
                (ev[i].kind == event_kind::send || ev[i].kind == event_kind::recv))
                pp.push_back(i);
        std::sort(pp.begin(), pp.end(),
                  [&](std::size_t a, std::size_t b) { return ev[a].start_ns < ev[b].start_ns; });
        int combined = 0;
        for (std::size_t k = 0; k + 1 < pp.size(); ++k) {
            job_event* a = &ev[pp[k]];
            job_event* b = &ev[pp[k + 1]];
            if (a->kind == b->kind || b->start_ns >= a->end_ns())
                continue;
            job_event* recv = a->kind == event_kind::recv ? a : b;
            job_event* send = a->kind == event_kind::send ? a : b;
            const std::int64_t start = std::min(a->start_ns, b->start_ns);
            const std::int64_t end = std::max(a->end_ns(), b->end_ns());
            recv->name = m_job.names.intern(
                fmt::format("{} + {}", m_job.names[send->name], m_job.names[recv->name]));
            recv->start_ns = start;
            recv->dur_ns = end - start;
            send->dur_ns = -1; // removed below
            ++combined;
            ++k; // the pair is used up
        }
        if (combined == 0)
            return;
        ev.erase(
            std::remove_if(ev.begin(), ev.end(), [](const job_event& e) { return e.dur_ns < 0; }),
            ev.end());
        m_job.warn(m_path,
                   fmt::format("{}: {} overlapping send and receive timers of the pipeline are "
                               "combined exchanges (one transfer each, counted as its receive)",
                               who, combined),
                   "combined exchanges");
    }

    const char* m_begin = nullptr; ///< the text being walked (for event_where)
    std::string m_path;
    trace_part& m_job;
    const rank_map& m_map;
    chrome::progress m_progress;
    std::map<std::int64_t, std::string> m_process_names;
    std::map<track_id, std::string> m_thread_names;
    std::map<track_id, std::vector<pending>> m_tracks;
    std::map<track_id, std::vector<open_timer>> m_open;
};

} // namespace

void read_timer_file(const std::string& path, trace_part& part, const rank_map& map) {
    timer_file(path, part, map).read();
}

} // namespace wlb::profiler
