// wlbtune's own Perfetto exports (reports/perfetto.hpp): `simulate --trace` and `run` write one
// process per rank (pid = rank), one thread per lane (tid = lane + 1), complete events whose cat
// is the event kind and whose args carry step, micro_batch, stage, virtual_stage, phase and bytes,
// and otherData naming the source ("simulated", "cpu", ...), the layout and the command that wrote
// it. These are the events of a wlbtune.trace/1 directory, read back as such (a simulated
// export stays labelled simulated).
//
// The Perfetto trace `analyze --perfetto` writes (otherData.kind "analysis": measured events
// beside a simulated ideal timeline) is not a job's trace: it is refused, naming the traces it
// was made from.
#include "base/error.hpp"
#include "profiler/ingest/chrome_json.hpp"
#include "profiler/ingest/ingest.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <map>

namespace wlb::profiler {
namespace {

namespace od = simdjson::ondemand;
using chrome::int_or;
using chrome::micros_to_ns;

class perfetto_file {
public:
    perfetto_file(const std::string& path, trace_part& part) : m_path(path), m_part(part) {}

    void read() {
        loaded_text& in = chrome::buffers().text;
        load_text_file(m_path, in);
        m_part.files.push_back(m_path);
        m_part.input_bytes += in.file_bytes;
        m_part.left_out = "this file's events are";
        bool truncated = false;
        if (in.problem) {
            m_part.warn(m_path, *in.problem + "; reading the events before the cut");
            truncated = true;
        }
        chrome::parse_recovering(
            in.text, m_path, m_part, m_progress,
            [&](od::document& doc, const char* begin, chrome::progress& p) { walk(doc, begin, p); },
            [&] { m_ranks.clear(); });
        truncated = truncated || m_progress.truncated;
        if (m_analysis)
            refuse();
        if (!m_layout.empty())
            m_part.source_layout = m_layout;
        if (!m_order.empty())
            m_part.source_order = m_order;
        for (auto& [rank, events] : m_ranks) {
            auto& entry = m_part.add_rank(rank, m_path);
            entry.trace.truncated = truncated;
            entry.trace.events = std::move(events);
        }
    }

private:
    [[noreturn]] void refuse() const {
        std::vector<std::string> quoted;
        for (const auto& in : m_inputs)
            quoted.push_back(fmt::format("'{}'", in));
        throw input_error(
            m_path,
            fmt::format("this is the Perfetto trace `wlbtune analyze --perfetto` writes (the "
                        "measured events beside a simulated ideal timeline), not a job's trace; "
                        "analyze the traces it was made from{}",
                        quoted.empty()
                            ? std::string(" (the directory or files given to that "
                                          "analyze)")
                            : fmt::format(": wlbtune analyze {}", fmt::join(quoted, " "))));
    }

    void other_data(od::object& o) {
        for (auto f : o) {
            od::raw_json_string k = f.key();
            od::value v = f.value();
            const bool text = v.type() == od::json_type::string;
            if (k == "kind" && text) {
                m_analysis = v.get_string().value() == "analysis";
            } else if (k == "label" && text) {
                // Before exports were marked, the analysis export said so in its label.
                const std::string_view label = v.get_string().value();
                m_analysis = m_analysis || label.starts_with("measured, with the ideal timeline");
            } else if (k == "source" && text) {
                m_part.source = std::string(v.get_string().value());
            } else if (k == "layout" && text) {
                m_layout = std::string(v.get_string().value());
            } else if (k == "order" && text) {
                m_order = std::string(v.get_string().value());
            } else if (k == "note" && text) {
                m_part.note = std::string(v.get_string().value());
            } else if (k == "tp_replicated" && v.type() == od::json_type::boolean) {
                m_part.tp_replicated = v.get_bool().value();
            } else if ((k == "command_line" || k == "inputs") && v.type() == od::json_type::array) {
                std::vector<std::string> list;
                for (auto a : v.get_array())
                    if (a.type() == od::json_type::string)
                        list.emplace_back(a.get_string().value());
                if (k == "inputs")
                    m_inputs = std::move(list);
                else
                    m_part.command_line = std::move(list);
            }
        }
    }

    void walk(od::document& doc, const char* begin, chrome::progress& p) {
        od::object top = doc.get_object();
        for (auto field : top) {
            od::raw_json_string key = field.key();
            if (key == "otherData") {
                od::object o = field.value().get_object();
                other_data(o);
            } else if (key == "traceEvents") {
                for (auto ev : field.value().get_array()) {
                    od::object o = ev.get_object();
                    event(o);
                    chrome::advanced(doc, begin, p);
                }
            }
        }
    }

    void event(od::object& obj) {
        std::string_view ph, name, cat, phase_text;
        std::int64_t ts = 0, dur = -1, pid = -1, tid = -1;
        std::int64_t step = -1, micro_batch = -1, virtual_stage = -1;
        double bytes = 0.0;
        bool have_ts = false;
        for (auto f : obj) {
            od::raw_json_string k = f.key();
            if (k == "ph") {
                ph = f.value().get_string().value();
            } else if (k == "name") {
                od::value v = f.value();
                if (v.type() == od::json_type::string)
                    name = v.get_string().value();
            } else if (k == "cat") {
                cat = f.value().get_string().value();
            } else if (k == "ts") {
                have_ts = micros_to_ns(f.value().raw_json_token(), ts);
            } else if (k == "dur") {
                micros_to_ns(f.value().raw_json_token(), dur);
            } else if (k == "pid") {
                od::value v = f.value();
                pid = int_or(v, -1);
            } else if (k == "tid") {
                od::value v = f.value();
                tid = int_or(v, -1);
            } else if (k == "args") {
                od::value av = f.value();
                if (av.type() != od::json_type::object)
                    continue;
                od::object a = av.get_object();
                for (auto af : a) {
                    od::raw_json_string ak = af.key();
                    od::value v = af.value();
                    if (ak == "step")
                        step = int_or(v, -1);
                    else if (ak == "micro_batch")
                        micro_batch = int_or(v, -1);
                    else if (ak == "virtual_stage")
                        virtual_stage = int_or(v, -1);
                    else if (ak == "phase" && v.type() == od::json_type::string)
                        phase_text = v.get_string().value();
                    else if (ak == "bytes")
                        bytes = v.get_double().value();
                }
            }
        }
        if (ph != "X" || m_analysis)
            return;
        if (cat == "ideal" || cat == "straggler") {
            m_analysis = true;
            return;
        }
        const std::string where = fmt::format("{}:event {}", m_path, m_progress.events);
        const auto kind = runtime::event_kind_from_name(cat);
        const auto ph_value = runtime::phase_from_name(phase_text.empty() ? "none" : phase_text);
        if (!kind || !ph_value || pid < 0 || tid < 1 || tid > runtime::lane_count || !have_ts ||
            dur < 0)
            throw input_error(where, fmt::format("\"{}\" is not an event of a wlbtune Perfetto "
                                                 "export (cat \"{}\", pid {}, tid {}, phase "
                                                 "\"{}\", ts and dur >= 0 expected: pid the rank, "
                                                 "tid the lane + 1)",
                                                 name, cat, pid, tid, phase_text));
        job_event e;
        e.start_ns = ts;
        e.dur_ns = dur;
        e.bytes = bytes;
        e.name = m_part.names.intern(name);
        e.step = static_cast<std::int32_t>(step);
        e.micro_batch = static_cast<std::int16_t>(std::clamp<std::int64_t>(micro_batch, -1, 32767));
        e.virtual_stage =
            static_cast<std::int16_t>(std::clamp<std::int64_t>(virtual_stage, -1, 32767));
        e.where = static_cast<runtime::lane>(tid - 1);
        e.kind = *kind;
        e.ph = *ph_value;
        e.stream = static_cast<std::int32_t>(e.where);
        if (e.kind == runtime::event_kind::compute) {
            auto it = m_work.find(e.name);
            if (it == m_work.end())
                it = m_work.emplace(e.name, wlbtune_work_of(name)).first;
            e.work = it->second;
        }
        m_ranks[static_cast<int>(pid)].push_back(e);
    }

    std::string m_path;
    trace_part& m_part;
    chrome::progress m_progress;
    bool m_analysis = false;
    std::string m_layout, m_order;
    std::vector<std::string> m_inputs;
    std::map<int, std::vector<job_event>> m_ranks;
    std::map<std::int32_t, work_class> m_work;
};

} // namespace

void read_perfetto_file(const std::string& path, trace_part& part) {
    perfetto_file(path, part).read();
}

} // namespace wlb::profiler
