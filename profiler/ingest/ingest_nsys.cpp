// Nsight Systems SQLite exports (`nsys export --type sqlite report.nsys-rep`), one file per rank.
// The schema read (tables are created lazily: a missing table is an empty one; docs/formats.md,
// "Nsight Systems exports", lists the columns):
//
//   StringIds (id, value)                                   names by id
//   TARGET_INFO_SESSION_START_TIME (utcEpochNs)             added to every timestamp, so that
//                                                           ranks' files share one clock
//   CUPTI_ACTIVITY_KIND_KERNEL (start, end, streamId, correlationId, demangledName, shortName)
//                                                           GPU kernels, classified by name
//                                                           (profiler/ingest/kernel_names.hpp)
//   CUPTI_ACTIVITY_KIND_MEMCPY (start, end, streamId, correlationId, bytes, copyKind),
//   CUPTI_ACTIVITY_KIND_MEMSET (start, end, streamId, correlationId, bytes)
//                                                           memory copies and sets (busy, not
//                                                           compute, as HTA counts them)
//   CUPTI_ACTIVITY_KIND_RUNTIME (start, globalTid, correlationId)
//                                                           launches: tie a kernel to the CPU
//                                                           time it was launched at
//   NVTX_EVENTS (start, end, eventType, text, textId, int32Value, int64Value, uint32Value,
//                uint64Value)                               ranges (eventType 59 push/pop, 60
//                                                           start/end) and marks (34)
//
// NVTX ranges named "ProfilerStep#N", "step N" or "iteration N" are the steps; ranges named like
// Megatron timers (forward-compute, backward-compute, ..., profiler/ingest/megatron_timers.hpp)
// tie the kernels launched inside them to a pass and a micro-batch (the k-th range of a name in a
// step is micro-batch k), as Kineto's record_function ranges do. The rank is an NVTX mark or
// range whose text is "rank N" (or "rank" with an integer payload), else --rank-map's file rules,
// else the file's name ("rank3.sqlite", "trace_rank_3.sqlite"), else its place among the inputs.
// NCCL kernels carry no communicator in the export: they are counted on the dp lane (point-to-point
// on the pp lane) per stream and are not matched across ranks.
#include "base/error.hpp"
#include "profiler/ingest/ingest.hpp"
#include "profiler/ingest/kernel_names.hpp"
#include "profiler/ingest/megatron_timers.hpp"
#include "profiler/ingest/rank_names.hpp"

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fmt/format.h>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sqlite3.h>
#include <unordered_map>

namespace wlb::profiler {
namespace {

using runtime::event_kind;
using runtime::lane;

// A read-only connection; closed when it goes.
class database {
public:
    explicit database(const std::string& path) : m_path(path) {
        if (sqlite3_open_v2(path.c_str(), &m_db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                            nullptr) != SQLITE_OK) {
            const std::string why = m_db ? sqlite3_errmsg(m_db) : "out of memory";
            sqlite3_close(m_db);
            m_db = nullptr;
            throw input_error(path, fmt::format("cannot open as an SQLite database: {}", why));
        }
    }
    ~database() { sqlite3_close(m_db); }
    database(const database&) = delete;
    database& operator=(const database&) = delete;

    [[nodiscard]] bool has_table(const std::string& name) {
        bool found = false;
        query(fmt::format("SELECT 1 FROM sqlite_master WHERE type='table' AND name='{}'", name),
              [&](sqlite3_stmt*) { found = true; });
        return found;
    }
    [[nodiscard]] std::set<std::string> columns(const std::string& table) {
        std::set<std::string> out;
        query(fmt::format("PRAGMA table_info({})", table), [&](sqlite3_stmt* s) {
            if (const auto* t = sqlite3_column_text(s, 1))
                out.insert(reinterpret_cast<const char*>(t));
        });
        return out;
    }
    // Runs `sql`, calling `row` for each result row. Throws wlb::input_error naming the file.
    template <typename Row>
    void query(const std::string& sql, Row&& row) {
        sqlite3_stmt* stmt = nullptr;
        if (sqlite3_prepare_v2(m_db, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
            const std::string why = sqlite3_errmsg(m_db);
            sqlite3_finalize(stmt);
            throw input_error(m_path, fmt::format("{} (query: {})", why, sql));
        }
        int rc = 0;
        while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
            row(stmt);
        const std::string why = rc == SQLITE_DONE ? std::string() : sqlite3_errmsg(m_db);
        sqlite3_finalize(stmt);
        if (rc != SQLITE_DONE)
            throw input_error(m_path, fmt::format("{} (query: {})", why, sql));
    }

private:
    std::string m_path;
    sqlite3* m_db = nullptr;
};

std::int64_t column_int(sqlite3_stmt* s, int i, std::int64_t fallback = -1) {
    return sqlite3_column_type(s, i) == SQLITE_NULL ? fallback : sqlite3_column_int64(s, i);
}

std::string column_text(sqlite3_stmt* s, int i) {
    const auto* t = sqlite3_column_text(s, i);
    return t ? std::string(reinterpret_cast<const char*>(t)) : std::string();
}

struct range {
    std::int64_t start_ns = 0;
    std::int64_t end_ns = 0;
    std::int32_t value = 0; ///< step number, or the timer name's id
};

const range* containing(const std::vector<range>& list, std::int64_t t) {
    auto it = std::upper_bound(list.begin(), list.end(), t,
                               [](std::int64_t x, const range& r) { return x < r.start_ns; });
    for (int back = 0; back < 4 && it != list.begin(); ++back) {
        --it;
        if (it->start_ns <= t && t <= it->end_ns)
            return &*it;
    }
    return nullptr;
}

std::string_view memcpy_name(std::int64_t kind) {
    switch (kind) {
    case 1:
        return "Memcpy HtoD";
    case 2:
        return "Memcpy DtoH";
    case 8:
        return "Memcpy DtoD";
    case 10:
        return "Memcpy PtoP";
    default:
        return "Memcpy";
    }
}

class nsys_file {
public:
    nsys_file(const std::string& path, trace_part& part, const rank_map& map)
        : m_path(path), m_part(part), m_map(map), m_db(path) {}

    void read() {
        std::error_code ec;
        const auto size = std::filesystem::file_size(m_path, ec);
        m_part.files.push_back(m_path);
        m_part.input_bytes += ec ? 0 : static_cast<std::int64_t>(size);
        m_part.left_out = "this file is";
        if (!m_db.has_table("StringIds"))
            throw input_error(m_path, "an SQLite database but not an Nsight Systems export (no "
                                      "StringIds table; export with nsys export --type sqlite)");
        read_strings();
        read_base();
        read_nvtx();
        read_launches();
        read_gpu_work();
        resolve();
    }

private:
    void read_strings() {
        m_db.query("SELECT id, value FROM StringIds", [&](sqlite3_stmt* s) {
            m_strings.emplace(sqlite3_column_int64(s, 0), column_text(s, 1));
        });
    }
    const std::string& string_of(std::int64_t id) {
        static const std::string none;
        auto it = m_strings.find(id);
        return it != m_strings.end() ? it->second : none;
    }

    void read_base() {
        if (!m_db.has_table("TARGET_INFO_SESSION_START_TIME"))
            return;
        m_db.query("SELECT utcEpochNs FROM TARGET_INFO_SESSION_START_TIME",
                   [&](sqlite3_stmt* s) { m_base_ns = column_int(s, 0, 0); });
    }

    // NVTX: the rank, the steps and the timer-named ranges.
    void read_nvtx() {
        if (!m_db.has_table("NVTX_EVENTS"))
            return;
        const auto cols = m_db.columns("NVTX_EVENTS");
        auto col = [&](const char* c) {
            return cols.count(c) ? std::string(c) : "NULL";
        };
        const std::string sql =
            fmt::format("SELECT start, end, eventType, {}, {}, {}, {}, {}, {} FROM NVTX_EVENTS",
                        col("text"), col("textId"), col("int32Value"), col("int64Value"),
                        col("uint32Value"), col("uint64Value"));
        static const std::regex step_re(
            R"(^\s*(?:profilerstep#|step[\s_#:=-]*|iteration[\s_#:=-]*)(\d+)\s*$)",
            std::regex::icase);
        static const std::regex rank_re(R"(^\s*rank[\s_#:=-]*(\d+)\s*$)", std::regex::icase);
        m_db.query(sql, [&](sqlite3_stmt* s) {
            std::string text = column_text(s, 3);
            if (text.empty() && sqlite3_column_type(s, 4) != SQLITE_NULL)
                text = string_of(sqlite3_column_int64(s, 4));
            std::smatch m;
            if (std::regex_match(text, m, rank_re)) {
                m_rank = saturated_int(m[1].str());
                return;
            }
            if (text == "rank" || text == "Rank") {
                for (int c = 5; c <= 8; ++c)
                    if (sqlite3_column_type(s, c) != SQLITE_NULL) {
                        m_rank = static_cast<int>(sqlite3_column_int64(s, c));
                        return;
                    }
            }
            const std::int64_t type = column_int(s, 2, 0);
            if ((type != 59 && type != 60) || sqlite3_column_type(s, 1) == SQLITE_NULL)
                return;
            const std::int64_t start = sqlite3_column_int64(s, 0);
            const std::int64_t end = sqlite3_column_int64(s, 1);
            if (end < start) {
                m_part.warn(m_path,
                            fmt::format("NVTX range \"{}\" ends before it begins; left out", text),
                            "negative duration");
                return;
            }
            if (std::regex_match(text, m, step_re)) {
                m_steps.push_back({start, end, saturated_int(m[1].str())});
                return;
            }
            const auto meaning = megatron_timer(text);
            if (meaning && !meaning->envelope && !meaning->sub_timer)
                m_marks.push_back({start, end, m_part.names.intern(text)});
        });
        auto by_start = [](const range& a, const range& b) {
            return a.start_ns < b.start_ns;
        };
        std::sort(m_steps.begin(), m_steps.end(), by_start);
        std::sort(m_marks.begin(), m_marks.end(), by_start);
    }

    void read_launches() {
        if (!m_db.has_table("CUPTI_ACTIVITY_KIND_RUNTIME"))
            return;
        m_db.query("SELECT correlationId, start FROM CUPTI_ACTIVITY_KIND_RUNTIME",
                   [&](sqlite3_stmt* s) {
                       if (sqlite3_column_type(s, 0) != SQLITE_NULL)
                           m_launch.emplace(sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1));
                   });
    }

    struct gpu_op {
        std::int64_t start = 0, end = 0, correlation = -1, stream = 0;
        std::int32_t name = 0;
        kernel_info info;
        bool memory = false;
        double bytes = 0.0;
    };

    void read_gpu_work() {
        if (m_db.has_table("CUPTI_ACTIVITY_KIND_KERNEL")) {
            const auto cols = m_db.columns("CUPTI_ACTIVITY_KIND_KERNEL");
            const std::string name_col = cols.count("demangledName") ? "demangledName"
                                         : cols.count("shortName")   ? "shortName"
                                                                     : "NULL";
            m_db.query(fmt::format("SELECT start, end, streamId, correlationId, {} FROM "
                                   "CUPTI_ACTIVITY_KIND_KERNEL",
                                   name_col),
                       [&](sqlite3_stmt* s) {
                           gpu_op k;
                           k.start = sqlite3_column_int64(s, 0);
                           k.end = sqlite3_column_int64(s, 1);
                           k.stream = column_int(s, 2, 0);
                           k.correlation = column_int(s, 3, -1);
                           const std::int64_t id = column_int(s, 4, -1);
                           k.name = m_part.names.intern(id >= 0 ? string_of(id) : "kernel");
                           k.info = info_of(k.name);
                           m_ops.push_back(k);
                       });
        } else {
            m_part.warn(m_path, "no CUPTI_ACTIVITY_KIND_KERNEL table (was the report captured "
                                "with --trace=cuda?)");
        }
        if (m_db.has_table("CUPTI_ACTIVITY_KIND_MEMCPY"))
            m_db.query("SELECT start, end, streamId, correlationId, bytes, copyKind FROM "
                       "CUPTI_ACTIVITY_KIND_MEMCPY",
                       [&](sqlite3_stmt* s) {
                           gpu_op k;
                           k.start = sqlite3_column_int64(s, 0);
                           k.end = sqlite3_column_int64(s, 1);
                           k.stream = column_int(s, 2, 0);
                           k.correlation = column_int(s, 3, -1);
                           k.bytes = static_cast<double>(column_int(s, 4, 0));
                           k.name = m_part.names.intern(memcpy_name(column_int(s, 5, 0)));
                           k.memory = true;
                           m_ops.push_back(k);
                       });
        if (m_db.has_table("CUPTI_ACTIVITY_KIND_MEMSET"))
            m_db.query("SELECT start, end, streamId, correlationId, bytes FROM "
                       "CUPTI_ACTIVITY_KIND_MEMSET",
                       [&](sqlite3_stmt* s) {
                           gpu_op k;
                           k.start = sqlite3_column_int64(s, 0);
                           k.end = sqlite3_column_int64(s, 1);
                           k.stream = column_int(s, 2, 0);
                           k.correlation = column_int(s, 3, -1);
                           k.bytes = static_cast<double>(column_int(s, 4, 0));
                           k.name = m_part.names.intern("Memset");
                           k.memory = true;
                           m_ops.push_back(k);
                       });
        std::sort(m_ops.begin(), m_ops.end(),
                  [](const gpu_op& a, const gpu_op& b) { return a.start < b.start; });
    }

    kernel_info info_of(std::int32_t name) {
        auto it = m_info.find(name);
        if (it == m_info.end())
            it = m_info.emplace(name, classify_kernel(m_part.names[name])).first;
        return it->second;
    }

    int rank_from_file_name() const {
        static const std::regex re(R"(rank[_-]?(\d+))", std::regex::icase);
        std::smatch m;
        const std::string base = std::filesystem::path(m_path).filename().string();
        return std::regex_search(base, m, re) ? saturated_int(m[1].str()) : -1;
    }

    void resolve() {
        int rank = m_rank;
        name_coords by_map;
        if (rank < 0) {
            by_map = m_map.apply("", -1, "", -1, std::filesystem::path(m_path).filename().string());
            rank = by_map.rank;
        }
        if (rank < 0 && !by_map.any_coords())
            rank = rank_from_file_name();
        auto& entry = m_part.add_rank(rank, m_path);
        if (rank < 0 && by_map.any_coords()) {
            entry.where = by_map.where;
            entry.label = m_path;
        }
        entry.no_rank_why = "no NVTX \"rank N\" and no rank in the file name";
        auto& rt = entry.trace;
        if (!m_marks.empty())
            m_part.per_layer_events = false;
        // The k-th range of a timer name in a step is micro-batch k.
        std::vector<std::pair<int, int>> mark_slot(m_marks.size()); // (step, micro-batch)
        {
            std::map<std::pair<int, std::int32_t>, int> count;
            for (std::size_t i = 0; i < m_marks.size(); ++i) {
                const range* st = containing(m_steps, m_marks[i].start_ns);
                const int step = st ? st->value : -1;
                mark_slot[i] = {step, count[{step, m_marks[i].value}]++};
            }
        }
        std::int64_t outside = 0, nccl = 0;
        std::unordered_map<std::int64_t, std::int32_t> stream_groups;
        rt.events.reserve(m_ops.size());
        for (const auto& k : m_ops) {
            if (k.end < k.start) {
                m_part.warn(m_path,
                            fmt::format("\"{}\" at {} ns ends before it begins; left out",
                                        m_part.names[k.name], k.start),
                            "negative duration");
                continue;
            }
            // Where it was launched from (the CPU side of NVTX ranges), else when it ran.
            std::int64_t cpu_t = k.start;
            if (auto it = m_launch.find(k.correlation); it != m_launch.end())
                cpu_t = it->second;
            job_event e;
            e.start_ns = k.start + m_base_ns;
            e.dur_ns = k.end - k.start;
            e.name = k.name;
            e.stream = static_cast<std::int32_t>(k.stream);
            e.bytes = k.bytes;
            if (const range* st = containing(m_steps, cpu_t))
                e.step = st->value;
            else
                ++outside;
            if (const range* mk = containing(m_marks, cpu_t)) {
                const auto meaning = megatron_timer(m_part.names[mk->value]);
                e.ph = meaning->ph;
                if (meaning->per_micro_batch)
                    e.micro_batch = static_cast<std::int16_t>(
                        mark_slot[static_cast<std::size_t>(mk - m_marks.data())].second);
            }
            if (k.info.kind != kernel_kind::nccl) {
                e.where = lane::compute;
                e.kind = event_kind::compute;
                e.work = k.memory                                ? work_class::memory
                         : k.info.kind == kernel_kind::attention ? work_class::attention
                         : k.info.kind == kernel_kind::linear    ? work_class::linear
                                                                 : work_class::other;
                rt.events.push_back(e);
                continue;
            }
            ++nccl;
            e.kind = k.info.op == nccl_op::send ? event_kind::send
                     : is_p2p(k.info.op)        ? event_kind::recv
                                                : event_kind::collective;
            e.where = is_p2p(k.info.op) ? lane::pp : lane::dp;
            auto it = stream_groups.find(k.stream);
            if (it == stream_groups.end())
                it = stream_groups
                         .emplace(k.stream,
                                  m_part.group_of(e.where, {},
                                                  fmt::format("{} NCCL stream {} (no communicator "
                                                              "in an Nsight export)",
                                                              m_path, k.stream)))
                         .first;
            e.group = it->second;
            rt.events.push_back(e);
        }
        if (outside > 0)
            m_part.warn(m_path, fmt::format("{} of {} GPU operations fall outside every NVTX step "
                                            "range (ProfilerStep#N, step N, iteration N); they are "
                                            "left out of the per-step analysis",
                                            outside, m_ops.size()));
        if (nccl > 0)
            m_part.warn(m_path,
                        fmt::format("{} NCCL kernels: an Nsight export names no "
                                    "communicator, so they count on the dp lane (pp for "
                                    "send/receive) and are not matched across ranks",
                                    nccl),
                        "nsys nccl");
    }

    std::string m_path;
    trace_part& m_part;
    const rank_map& m_map;
    database m_db;
    std::unordered_map<std::int64_t, std::string> m_strings;
    std::int64_t m_base_ns = 0;
    int m_rank = -1;
    std::vector<range> m_steps, m_marks;
    std::unordered_map<std::int64_t, std::int64_t> m_launch; // correlation -> CPU start
    std::vector<gpu_op> m_ops;
    std::unordered_map<std::int32_t, kernel_info> m_info;
};

} // namespace

void read_nsys_file(const std::string& path, trace_part& part, const rank_map& map) {
    nsys_file(path, part, map).read();
}

} // namespace wlb::profiler
