// Megatron-style timer timelines (docs/formats.md, "Timer timelines"): Chrome-trace JSON whose
// events are Megatron-LM timers, one file per rank or one file for many (one process each).
//
//   {"traceEvents": [
//      {"ph": "M", "pid": 5, "name": "process_name", "args": {"name": "rank 5 tp1 cp0 pp1 dp0"}},
//      {"ph": "X", "pid": 5, "tid": 0, "name": "forward-compute", "ts": 1234.5, "dur": 80.25,
//       "args": {"step": 3, "micro_batch": 0, "virtual_stage": 0}},
//      {"ph": "B", ...}, {"ph": "E", ...}, ...],
//    "metadata": {"layout": "tp=2,cp=1,pp=2,dp=2", "order": "tp-cp-pp-dp"}}
//
// A process is a rank: "rank N" in its process_name (with its coordinates "tpA cpB ppC dpD"
// when known), or args.rank on its events, or the file name (rankN), or its place among the
// inputs. Steps come from args.step (or "iteration"); where they are missing, a step ends with
// each "optimizer" timer. Micro-batches come from args.micro_batch (or "microbatch", "mb");
// where missing, they are counted per step, model chunk and pass. Timers outside the
// vocabulary (profiler/ingest/megatron_timers.hpp) are kept on the host lane with a warning.
#include "profiler/ingest/chrome_json.hpp"
#include "profiler/ingest/ingest.hpp"
#include "profiler/ingest/megatron_timers.hpp"

#include <algorithm>
#include <filesystem>
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

struct pending {
    std::int64_t ts_ns = 0;
    std::int64_t dur_ns = 0;
    std::int64_t event = 0;
    std::int32_t name = 0;
    std::int32_t tid = 0;
    std::int32_t step = -1;
    std::int32_t micro_batch = -1;
    std::int32_t virtual_stage = -1;
    std::int32_t arg_rank = -1;
};

struct open_timer {
    std::int32_t name = 0;
    std::int64_t ts_ns = 0;
    pending args;
};

class timer_file {
public:
    timer_file(const std::string& path, job_trace& job) : m_path(path), m_job(job) {}

    void read(int fallback_rank) {
        loaded_text& in = chrome::buffers().text;
        load_text_file(m_path, in);
        m_job.files.push_back(m_path);
        m_job.input_bytes += in.file_bytes;
        if (in.problem)
            m_job.warn(m_path, *in.problem + "; reading the events before the cut");
        chrome::parse_recovering(
            in.text, m_path, m_job, m_progress,
            [&](od::document& doc, const char* begin, chrome::progress& p) { walk(doc, begin, p); },
            [&] {
                m_by_pid.clear();
                m_open.clear();
            });
        const bool truncated = in.problem.has_value() || m_progress.truncated;
        resolve(fallback_rank, truncated);
    }

private:
    void walk(od::document& doc, const char* begin, chrome::progress& p) {
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
                        m_job.source_world_size =
                            std::max(m_job.source_world_size, static_cast<int>(int_or(v, 0)));
                    }
                }
            }
        }
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
            } else if (k == "dur") {
                micros_to_ns(f.value().raw_json_token(), dur);
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
                        args.step = static_cast<std::int32_t>(int_or(v, -1));
                    else if (ak == "micro_batch" || ak == "microbatch" || ak == "mb")
                        args.micro_batch = static_cast<std::int32_t>(int_or(v, -1));
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
        auto& proc = m_by_pid[pid];
        if (ph == "M") {
            if (name == "process_name")
                proc.process_name = meta_name;
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
            proc.events.push_back(args);
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
                    proc.events.push_back(p);
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
        return std::regex_search(base, m, re) ? std::stoi(m[1]) : -1;
    }

    void resolve(int fallback_rank, bool truncated) {
        for (const auto& [key, stack] : m_open)
            for (const auto& t : stack)
                m_job.warn(m_path,
                           fmt::format("timer \"{}\" of process {} begins at {} ns and "
                                       "never ends; left out",
                                       m_job.names[t.name], key.first, t.ts_ns),
                           "unclosed timer");
        static const std::regex name_re(
            R"(rank\s*(\d+)(?:\s+tp(\d+)\s+cp(\d+)\s+pp(\d+)\s+dp(\d+))?)", std::regex::icase);
        const bool single = m_by_pid.size() == 1;
        for (auto& [pid, proc] : m_by_pid) {
            if (proc.events.empty())
                continue;
            int rank = -1;
            std::smatch m;
            if (!proc.process_name.empty() && std::regex_search(proc.process_name, m, name_re)) {
                rank = std::stoi(m[1]);
                if (m[2].matched)
                    m_job.rank_coords[rank] = {std::stoi(m[2]), std::stoi(m[3]), std::stoi(m[4]),
                                               std::stoi(m[5])};
            } else if (proc.events.front().arg_rank >= 0) {
                rank = proc.events.front().arg_rank;
            } else if (single && rank_from_file_name() >= 0) {
                rank = rank_from_file_name();
            } else if (single) {
                rank = fallback_rank;
                m_job.warn(m_path, fmt::format("no rank in the process metadata, the events or "
                                               "the file name; taken as rank {} (its place "
                                               "among the inputs)",
                                               rank));
            } else {
                m_job.warn(m_path, fmt::format("process {} names no rank (process_name \"rank "
                                               "N ...\" or args.rank); its {} timers are left "
                                               "out",
                                               pid, proc.events.size()));
                continue;
            }
            add_rank(rank, proc.events, truncated);
        }
    }

    void add_rank(int rank, std::vector<pending>& events, bool truncated) {
        auto* claimed = m_job.claim_rank(rank, m_path, "these timers are");
        if (!claimed)
            return;
        auto& rt = *claimed;
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
        std::set<std::int32_t> unknown;
        bool inferred_mb = false;
        std::int64_t last_optimizer_end = -1;
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
                if (unknown.insert(p.name).second)
                    m_job.warn(m_path,
                               fmt::format("timer \"{}\" is not a Megatron timer name "
                                           "wlbtune knows; kept on the host lane",
                                           name),
                               "unknown timer");
            }
            rt.events.push_back(e);
        }
        if (!any_step)
            m_job.warn(m_path, fmt::format("rank {}: the timers carry no step ids; steps "
                                           "counted by optimizer timers ({} steps)",
                                           rank, counted_step + 1));
        if (inferred_mb)
            m_job.warn(m_path,
                       fmt::format("rank {}: some per-micro-batch timers carry no "
                                   "micro-batch id; numbered in order per step, model "
                                   "chunk and pass",
                                   rank),
                       "inferred micro-batch");
    }

    struct process {
        std::string process_name;
        std::vector<pending> events;
    };

    std::string m_path;
    job_trace& m_job;
    chrome::progress m_progress;
    std::map<std::int64_t, process> m_by_pid;
    std::map<std::pair<std::int64_t, std::int64_t>, std::vector<open_timer>> m_open;
};

} // namespace

void read_timer_file(const std::string& path, job_trace& job, int fallback_rank) {
    timer_file(path, job).read(fallback_rank);
}

} // namespace wlb::profiler
