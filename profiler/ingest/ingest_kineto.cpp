// PyTorch profiler (Kineto) Chrome-trace JSON, one file per rank. What is read:
//
//   distributedInfo      {"rank", "world_size", "pg_config": [{"pg_name", "pg_desc", "ranks"}]}
//   baseTimeNanoseconds  added to every "ts" (microseconds, with fractions: read exactly to ns)
//   traceEvents:
//     "kernel", "gpu_memcpy", "gpu_memset"  GPU work: name, ts, dur, args.stream,
//                          args.correlation; NCCL kernels (ncclKernel_* and ncclDevKernel_*)
//                          may carry the collective's metadata in args (PyTorch >= 2.4)
//     "user_annotation" / "gpu_user_annotation" named "ProfilerStep#N"  the steps (GPU ranges
//                          when present, else the CPU ranges through each kernel's launch)
//     "cuda_runtime" / "cuda_driver" with args.correlation   kernel launches: tie a kernel to
//                          its CPU thread and time
//     "cpu_op" "record_param_comms" (or "nccl:*")  a collective's metadata: "Collective name",
//                          "Process Group Name" / "Description" / "Ranks", "Group size",
//                          "In msg nelems", "Out msg nelems", "dtype", "Seq"; it reaches the
//                          NCCL kernel launched inside it on the same thread
//     "gpu_user_annotation" / "user_annotation" named like a Megatron timer
//                          (record_function("forward-compute"), ... see megatron_timers.hpp)
//                          tie the kernels inside them (GPU ranges, else through the launch) to
//                          a pass and a micro-batch (their order among the same name in a step):
//                          with them the what-if attribution works on Kineto traces
//   everything else is skipped without being materialized (simdjson On Demand).
#include "base/error.hpp"
#include "profiler/ingest/chrome_json.hpp"
#include "profiler/ingest/ingest.hpp"
#include "profiler/ingest/kernel_names.hpp"
#include "profiler/ingest/megatron_timers.hpp"
#include "profiler/ingest/rank_names.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fmt/format.h>
#include <map>
#include <optional>
#include <regex>
#include <simdjson.h>
#include <unordered_map>

namespace wlb::profiler {
namespace {

namespace od = simdjson::ondemand;
using chrome::int_or;
using chrome::micros_to_ns;
using chrome::string_or_token;
using chrome::trim;
using runtime::event_kind;
using runtime::lane;

double dtype_bytes(std::string_view dtype) {
    std::string d(dtype);
    for (auto& c : d)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (d.find("float8") != std::string::npos || d == "byte" || d == "char" || d == "bool" ||
        d == "int8" || d == "uint8")
        return 1;
    if (d == "bfloat16" || d == "half" || d == "float16" || d == "short" || d == "int16")
        return 2;
    if (d == "double" || d == "long" || d == "int64" || d == "float64" || d == "complexfloat")
        return 8;
    return 4; // Float, Int
}

std::vector<int> parse_rank_list(std::string_view text, bool& elided) {
    std::vector<int> out;
    elided = text.find("...") != std::string_view::npos;
    int v = 0;
    bool in = false;
    for (char c : text) {
        if (c >= '0' && c <= '9') {
            v = v * 10 + (c - '0');
            in = true;
        } else {
            if (in)
                out.push_back(v);
            v = 0;
            in = false;
        }
    }
    if (in)
        out.push_back(v);
    return out;
}

struct comm_meta {
    nccl_op op = nccl_op::none;
    std::string group_name;
    std::string group_desc;
    std::vector<int> ranks;
    bool ranks_elided = false;
    std::int64_t group_size = 0, rank_start = -1, rank_stride = -1;
    std::int64_t seq = -1;
    std::int64_t in_elems = 0, out_elems = 0;
    std::string dtype;
    bool any = false;
};

struct raw_kernel {
    std::int64_t ts_ns = 0;
    std::int64_t dur_ns = 0;
    std::int64_t correlation = -1;
    std::int32_t name = 0;
    std::int32_t stream = 0;
    std::int32_t meta = -1; ///< index into metas (from the kernel's own args)
    std::int64_t event_index = 0;
    kernel_info info;
    bool copy = false; ///< gpu_memcpy / gpu_memset
};

struct launch {
    std::int64_t correlation = 0;
    std::int64_t ts_ns = 0;
    std::int32_t tid = 0;
};

struct cpu_range {
    std::int64_t start_ns = 0;
    std::int64_t end_ns = 0;
    std::int32_t tid = 0;
    std::int32_t value = 0; ///< step number or meta index
};

class kineto_file {
public:
    kineto_file(const std::string& path, trace_part& part, const rank_map& map)
        : m_path(path), m_job(part), m_map(map) {}

    void read() {
        loaded_text& in = chrome::buffers().text;
        load_text_file(m_path, in);
        m_job.files.push_back(m_path);
        m_job.input_bytes += in.file_bytes;
        if (in.problem) {
            m_job.warn(m_path, *in.problem + "; reading the events before the cut");
            m_truncated = true;
        }
        parse(in.text);
        resolve();
    }

private:
    void parse(text_buffer& text) {
        chrome::parse_recovering(
            text, m_path, m_job, m_progress,
            [&](od::document& doc, const char* begin, chrome::progress& p) { walk(doc, begin, p); },
            [&] { reset(); });
        m_truncated = m_truncated || m_progress.truncated;
    }

    void reset() {
        m_kernels.clear();
        m_launches.clear();
        m_comm_ranges.clear();
        m_cpu_steps.clear();
        m_gpu_steps.clear();
        m_cpu_marks.clear();
        m_gpu_marks.clear();
        m_metas.clear();
    }

    void walk(od::document& doc, const char* begin, chrome::progress& p) {
        od::object top = doc.get_object();
        for (auto field : top) {
            od::raw_json_string key = field.key();
            if (key == "traceEvents") {
                od::array events = field.value().get_array();
                for (auto ev : events) {
                    od::object obj = ev.get_object();
                    event(obj);
                    chrome::advanced(doc, begin, p);
                }
            } else if (key == "distributedInfo") {
                od::object info = field.value().get_object();
                distributed_info(info);
            } else if (key == "baseTimeNanoseconds") {
                std::string_view tok = field.value().raw_json_token();
                tok = trim(tok);
                std::int64_t v = 0;
                if (std::from_chars(tok.data(), tok.data() + tok.size(), v).ec == std::errc{})
                    m_base_ns = v;
            }
        }
    }

    void distributed_info(od::object& info) {
        for (auto f : info) {
            od::raw_json_string k = f.key();
            if (k == "rank") {
                const std::int64_t rank = f.value().get_int64().value();
                if (rank < 0 || rank >= max_trace_ranks)
                    throw input_error(m_path, fmt::format("distributedInfo.rank {} is outside 0 .. "
                                                          "{}",
                                                          rank, max_trace_ranks - 1));
                m_rank = static_cast<int>(rank);
            } else if (k == "world_size") {
                const std::int64_t world = f.value().get_int64().value();
                if (world < 1 || world > max_trace_ranks)
                    throw input_error(m_path, fmt::format("distributedInfo.world_size {} is "
                                                          "outside 1 .. {}",
                                                          world, max_trace_ranks));
                m_world = static_cast<int>(world);
            } else if (k == "pg_config") {
                od::value v = f.value();
                if (v.type() != od::json_type::array)
                    continue;
                for (auto pg : v.get_array()) {
                    od::object o = pg.get_object();
                    std::string name, desc;
                    std::vector<int> ranks;
                    for (auto pf : o) {
                        od::raw_json_string pk = pf.key();
                        if (pk == "pg_name")
                            name = std::string(pf.value().get_string().value());
                        else if (pk == "pg_desc")
                            desc = std::string(pf.value().get_string().value());
                        else if (pk == "ranks") {
                            od::value rv = pf.value();
                            if (rv.type() == od::json_type::array) {
                                for (auto r : rv.get_array())
                                    ranks.push_back(static_cast<int>(r.get_int64().value()));
                            } else if (rv.type() == od::json_type::string) {
                                bool elided = false;
                                ranks = parse_rank_list(rv.get_string().value(), elided);
                            }
                        }
                    }
                    if (!name.empty())
                        m_pg_config[name] = {desc, ranks};
                }
            }
        }
    }

    // Reads the collective metadata keys of an args object into `m`.
    void comm_args(od::object& args, comm_meta& m, std::int64_t* stream,
                   std::int64_t* correlation) {
        for (auto f : args) {
            od::raw_json_string k = f.key();
            od::value v = f.value();
            if (stream && k == "stream") {
                *stream = v.get_int64().value();
            } else if (correlation && k == "correlation") {
                *correlation = v.get_int64().value();
            } else if (k == "Collective name") {
                m.op = nccl_op_from_collective_name(v.get_string().value());
                m.any = true;
            } else if (k == "Process Group Name") {
                m.group_name = std::string(string_or_token(v));
                m.any = true;
            } else if (k == "Process Group Description") {
                m.group_desc = std::string(string_or_token(v));
            } else if (k == "Process Group Ranks") {
                if (v.type() == od::json_type::array) {
                    for (auto r : v.get_array())
                        m.ranks.push_back(static_cast<int>(r.get_int64().value()));
                } else {
                    m.ranks = parse_rank_list(string_or_token(v), m.ranks_elided);
                }
                m.any = true;
            } else if (k == "Group size") {
                m.group_size = int_or(v, 0);
            } else if (k == "Global rank start") {
                m.rank_start = int_or(v, 0);
            } else if (k == "Global rank stride") {
                m.rank_stride = int_or(v, 0);
            } else if (k == "Seq") {
                m.seq = int_or(v, 0);
            } else if (k == "In msg nelems") {
                m.in_elems = int_or(v, 0);
            } else if (k == "Out msg nelems") {
                m.out_elems = int_or(v, 0);
            } else if (k == "dtype") {
                m.dtype = std::string(string_or_token(v));
            }
        }
    }

    std::int32_t add_meta(comm_meta&& m) {
        m_metas.push_back(std::move(m));
        return static_cast<std::int32_t>(m_metas.size() - 1);
    }

    void event(od::object& obj) {
        std::string_view ph, cat, name;
        std::int64_t ts = 0, dur = -1, tid = 0, stream = -1, correlation = -1;
        bool have_ts = false;
        comm_meta meta;
        enum class want { unknown, kernel, runtime, comm, skip } w = want::unknown;
        auto decide = [&] {
            if (cat.empty() || name.empty())
                return;
            if (cat == "kernel" || cat == "gpu_memcpy" || cat == "gpu_memset")
                w = want::kernel;
            else if (cat == "cuda_runtime" || cat == "cuda_driver")
                w = want::runtime;
            else if (cat == "cpu_op" &&
                     (name == "record_param_comms" || name.substr(0, 5) == "nccl:"))
                w = want::comm;
            else
                w = want::skip;
        };
        for (auto f : obj) {
            od::raw_json_string k = f.key();
            if (k == "ph") {
                ph = f.value().get_string().value();
            } else if (k == "cat") {
                cat = f.value().get_string().value();
                decide();
            } else if (k == "name") {
                name = f.value().get_string().value();
                decide();
            } else if (k == "ts") {
                if (w != want::skip || cat.substr(0, 4) != "cpu_")
                    have_ts = micros_to_ns(f.value().raw_json_token(), ts);
            } else if (k == "dur") {
                if (w != want::skip || cat.substr(0, 4) != "cpu_")
                    micros_to_ns(f.value().raw_json_token(), dur);
            } else if (k == "tid") {
                od::value v = f.value();
                tid = v.type() == od::json_type::number ? v.get_int64().value() : 0;
            } else if (k == "args") {
                if (w == want::skip)
                    continue;
                od::object args = f.value().get_object();
                comm_args(args, meta, &stream, &correlation);
            }
        }
        if (ph != "X")
            return;
        const bool annotation = cat == "user_annotation" || cat == "gpu_user_annotation";
        const bool step_range = annotation && name.substr(0, 13) == "ProfilerStep#";
        std::optional<timer_meaning> timer;
        if (annotation && !step_range) {
            timer = megatron_timer(name);
            if (timer && (timer->envelope || timer->sub_timer))
                timer.reset();
        }
        if (w == want::skip && !step_range && !timer)
            return;
        if (!have_ts || dur < 0) {
            m_job.warn(fmt::format("{}:event {}", m_path, m_progress.events),
                       fmt::format("\"{}\" has a negative or missing ts or dur; left out", name),
                       "negative duration");
            return;
        }
        if (step_range) {
            int step = 0;
            const auto digits = name.substr(13);
            if (std::from_chars(digits.data(), digits.data() + digits.size(), step).ec !=
                std::errc{})
                return;
            auto& list = cat == "gpu_user_annotation" ? m_gpu_steps : m_cpu_steps;
            list.push_back({ts, ts + dur, static_cast<std::int32_t>(tid), step});
            return;
        }
        if (timer) {
            auto& list = cat == "gpu_user_annotation" ? m_gpu_marks : m_cpu_marks;
            list.push_back(
                {ts, ts + dur, static_cast<std::int32_t>(tid), m_job.names.intern(name)});
            return;
        }
        if (w == want::kernel) {
            raw_kernel k;
            k.ts_ns = ts;
            k.dur_ns = dur;
            k.correlation = correlation;
            k.name = m_job.names.intern(name);
            k.stream = static_cast<std::int32_t>(stream >= 0 ? stream : tid);
            k.event_index = m_progress.events;
            k.copy = cat != "kernel";
            k.info = k.copy ? kernel_info{kernel_kind::other, nccl_op::none} : info_of(k.name);
            if (k.info.kind == kernel_kind::nccl && meta.any)
                k.meta = add_meta(std::move(meta));
            m_kernels.push_back(k);
        } else if (w == want::runtime && correlation >= 0) {
            m_launches.push_back({correlation, ts, static_cast<std::int32_t>(tid)});
        } else if (w == want::comm && meta.any) {
            m_comm_ranges.push_back(
                {ts, ts + dur, static_cast<std::int32_t>(tid), add_meta(std::move(meta))});
        }
    }

    kernel_info info_of(std::int32_t name) {
        auto it = m_info.find(name);
        if (it != m_info.end())
            return it->second;
        const auto info = classify_kernel(m_job.names[name]);
        m_info.emplace(name, info);
        return info;
    }

    int rank_from_name() const {
        static const std::regex re(R"(rank[_-]?(\d+))", std::regex::icase);
        std::smatch m;
        const std::string base = std::filesystem::path(m_path).filename().string();
        if (std::regex_search(base, m, re))
            return saturated_int(m[1].str());
        return -1;
    }

    // Ranks of a collective's group; empty when the metadata does not say.
    std::vector<int> group_ranks(const comm_meta& m) const {
        if (!m.ranks.empty() && !m.ranks_elided)
            return m.ranks;
        if (m.rank_start >= 0 && m.rank_stride > 0 && m.group_size > 0) {
            std::vector<int> r;
            for (std::int64_t i = 0; i < m.group_size; ++i)
                r.push_back(static_cast<int>(m.rank_start + i * m.rank_stride));
            return r;
        }
        auto it = m_pg_config.find(m.group_name);
        if (it != m_pg_config.end() && !it->second.ranks.empty())
            return it->second.ranks;
        return {};
    }

    void resolve() {
        int rank = m_rank;
        name_coords by_map;
        if (rank < 0) {
            by_map = m_map.apply("", -1, "", -1, std::filesystem::path(m_path).filename().string());
            rank = by_map.rank;
        }
        if (rank < 0 && !by_map.any_coords())
            rank = rank_from_name();
        if (m_world > 0)
            m_job.source_world_size = std::max(m_job.source_world_size, m_world);
        m_job.left_out = "this file is";
        auto& entry = m_job.add_rank(rank, m_path);
        if (rank < 0 && by_map.any_coords()) {
            entry.where = by_map.where;
            entry.label = m_path;
        }
        entry.no_rank_why = "no distributedInfo.rank and no rank in the file name";
        auto& rt = entry.trace;
        rt.truncated = m_truncated;
        if (m_truncated) {
            // The cut fell in the last step the file opened.
            for (const auto* list : {&m_cpu_steps, &m_gpu_steps})
                for (const auto& st : *list)
                    rt.incomplete_step = std::max<std::int64_t>(rt.incomplete_step, st.value);
        }

        std::sort(m_launches.begin(), m_launches.end(),
                  [](const launch& a, const launch& b) { return a.correlation < b.correlation; });
        auto launch_of = [&](std::int64_t corr) -> const launch* {
            if (corr < 0)
                return nullptr;
            auto it =
                std::lower_bound(m_launches.begin(), m_launches.end(), corr,
                                 [](const launch& l, std::int64_t c) { return l.correlation < c; });
            return it != m_launches.end() && it->correlation == corr ? &*it : nullptr;
        };
        auto by_start = [](const cpu_range& a, const cpu_range& b) {
            return a.start_ns < b.start_ns;
        };
        std::sort(m_gpu_steps.begin(), m_gpu_steps.end(), by_start);
        std::sort(m_cpu_steps.begin(), m_cpu_steps.end(), by_start);
        // Collective metadata per CPU thread, by start.
        std::unordered_map<std::int32_t, std::vector<cpu_range>> comm_by_tid;
        for (const auto& c : m_comm_ranges)
            comm_by_tid[c.tid].push_back(c);
        for (auto& [tid, list] : comm_by_tid)
            std::sort(list.begin(), list.end(), by_start);
        auto containing = [](const std::vector<cpu_range>& list,
                             std::int64_t t) -> const cpu_range* {
            auto it =
                std::upper_bound(list.begin(), list.end(), t,
                                 [](std::int64_t x, const cpu_range& r) { return x < r.start_ns; });
            // Ranges may nest (record_param_comms inside nccl:*); look back a little.
            for (int back = 0; back < 4 && it != list.begin(); ++back) {
                --it;
                if (it->start_ns <= t && t <= it->end_ns)
                    return &*it;
            }
            return nullptr;
        };

        const bool gpu_steps = !m_gpu_steps.empty();
        // Timer-named annotations: GPU ranges when there are any, else CPU ranges around each
        // kernel's launch. Their micro-batch is their order among the same name in a step.
        const bool gpu_marks = !m_gpu_marks.empty();
        auto& marks = gpu_marks ? m_gpu_marks : m_cpu_marks;
        std::sort(marks.begin(), marks.end(), by_start);
        std::unordered_map<const cpu_range*, std::pair<int, int>> mark_slot; // -> (step, mb)
        {
            std::map<std::pair<int, std::int32_t>, int> count;
            for (const auto& mk : marks) {
                const cpu_range* st = gpu_marks ? containing(m_gpu_steps, mk.start_ns)
                                                : containing(m_cpu_steps, mk.start_ns);
                if (!st && gpu_marks)
                    st = containing(m_cpu_steps, mk.start_ns);
                const int step = st ? st->value : -1;
                mark_slot[&mk] = {step, count[{step, mk.value}]++};
            }
        }
        if (!marks.empty())
            m_job.per_layer_events = false;
        std::int64_t outside = 0, no_meta = 0;
        rt.events.reserve(m_kernels.size());
        std::unordered_map<std::int32_t, std::int32_t> unknown_groups; // stream -> group
        for (const auto& k : m_kernels) {
            job_event e;
            e.start_ns = k.ts_ns + m_base_ns;
            e.dur_ns = k.dur_ns;
            e.name = k.name;
            e.stream = k.stream;
            const launch* l = launch_of(k.correlation);
            const cpu_range* s = nullptr;
            if (gpu_steps)
                s = containing(m_gpu_steps, k.ts_ns);
            else if (l)
                s = containing(m_cpu_steps, l->ts_ns);
            if (s)
                e.step = s->value;
            else
                ++outside;
            const cpu_range* mk = nullptr;
            if (gpu_marks)
                mk = containing(marks, k.ts_ns);
            else if (l && !marks.empty())
                mk = containing(marks, l->ts_ns);
            if (mk) {
                const auto meaning = megatron_timer(m_job.names[mk->value]);
                e.ph = meaning->ph;
                if (meaning->per_micro_batch)
                    e.micro_batch = static_cast<std::int16_t>(mark_slot[mk].second);
            }
            if (k.info.kind != kernel_kind::nccl) {
                e.where = lane::compute;
                e.kind = event_kind::compute;
                e.work = k.copy                                  ? work_class::memory
                         : k.info.kind == kernel_kind::attention ? work_class::attention
                         : k.info.kind == kernel_kind::linear    ? work_class::linear
                                                                 : work_class::other;
                rt.events.push_back(e);
                continue;
            }
            const comm_meta* m = k.meta >= 0 ? &m_metas[static_cast<std::size_t>(k.meta)] : nullptr;
            if (!m && l) {
                auto it = comm_by_tid.find(l->tid);
                if (it != comm_by_tid.end())
                    if (const cpu_range* r = containing(it->second, l->ts_ns))
                        m = &m_metas[static_cast<std::size_t>(r->value)];
            }
            nccl_op op = k.info.op;
            // The metadata's operation when the kernel's name does not say (Generic) or says less
            // (one SendRecv kernel runs a send or a receive).
            if (m && m->op != nccl_op::none &&
                (op == nccl_op::generic || op == nccl_op::none ||
                 (op == nccl_op::send_recv && (m->op == nccl_op::send || m->op == nccl_op::recv))))
                op = m->op;
            e.kind = op == nccl_op::send                               ? event_kind::send
                     : op == nccl_op::recv || op == nccl_op::send_recv ? event_kind::recv
                                                                       : event_kind::collective;
            e.where = is_p2p(op) ? lane::pp : lane::dp; // refined from the group's ranks later
            if (m) {
                const double elems = static_cast<double>(std::max(m->in_elems, m->out_elems));
                e.bytes = elems * dtype_bytes(m->dtype);
                e.seq = m->seq;
                auto ranks = group_ranks(*m);
                std::string gname =
                    m->group_name.empty() ? std::string("unnamed group") : "pg " + m->group_name;
                if (!m->group_desc.empty())
                    gname += " (" + m->group_desc + ")";
                else if (auto it = m_pg_config.find(m->group_name);
                         it != m_pg_config.end() && !it->second.desc.empty())
                    gname += " (" + it->second.desc + ")";
                e.group = m_job.group_of(e.where, std::move(ranks), gname);
            } else {
                ++no_meta;
                auto it = unknown_groups.find(k.stream);
                if (it == unknown_groups.end())
                    it = unknown_groups
                             .emplace(
                                 k.stream,
                                 m_job.group_of(
                                     e.where, {},
                                     fmt::format("{} NCCL stream {} (no "
                                                 "group metadata)",
                                                 rank >= 0 ? fmt::format("rank {}", rank) : m_path,
                                                 k.stream)))
                             .first;
                e.group = it->second;
            }
            rt.events.push_back(e);
        }
        if (m_kernels.empty())
            m_job.warn(m_path, "no GPU kernel events (was the profiler run with "
                               "ProfilerActivity.CUDA?)");
        if (outside > 0)
            m_job.warn(m_path,
                       fmt::format("{} of {} GPU events fall outside every ProfilerStep#N range; "
                                   "they are left out of the per-step analysis",
                                   outside, m_kernels.size()));
        if (no_meta > 0)
            m_job.warn(m_path,
                       fmt::format("{} NCCL kernels carry no process-group metadata "
                                   "(record_param_comms); they are counted on the dp lane and "
                                   "matched across ranks by order",
                                   no_meta));
    }

    struct pg_info {
        std::string desc;
        std::vector<int> ranks;
    };

    std::string m_path;
    trace_part& m_job;
    const rank_map& m_map;
    chrome::progress m_progress;
    bool m_truncated = false;
    std::int64_t m_base_ns = 0;
    int m_rank = -1;
    int m_world = 0;
    std::vector<raw_kernel> m_kernels;
    std::vector<launch> m_launches;
    std::vector<cpu_range> m_comm_ranges, m_cpu_steps, m_gpu_steps;
    /// Record-function ranges named like Megatron timers ("forward-compute", ...): they tie the
    /// kernels inside them to a pass and a micro-batch (value = the name's id).
    std::vector<cpu_range> m_cpu_marks, m_gpu_marks;
    std::vector<comm_meta> m_metas;
    std::unordered_map<std::string, pg_info> m_pg_config;
    std::unordered_map<std::int32_t, kernel_info> m_info;
};

} // namespace

void read_kineto_file(const std::string& path, trace_part& part, const rank_map& map) {
    kineto_file(path, part, map).read();
}

} // namespace wlb::profiler
