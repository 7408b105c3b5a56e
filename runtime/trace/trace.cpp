#include "runtime/trace/trace.hpp"

#include "base/atomic_file.hpp"
#include "base/error.hpp"
#include "base/json_file.hpp"
#include "base/provenance.hpp"
#include "runtime/trace/sharded_batch_io.hpp"

#include <array>
#include <cstdio>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <nlohmann/json.hpp>

namespace wlb::runtime {
namespace {

constexpr std::array<std::string_view, lane_count> lane_names = {"compute", "tp", "cp",
                                                                 "pp",      "dp", "host"};
constexpr std::array<std::string_view, 5> kind_names = {"compute", "collective", "send", "recv",
                                                        "other"};
constexpr std::array<std::string_view, 4> phase_names = {"none", "fwd", "bwd", "optimizer"};

template <typename E, std::size_t N>
std::optional<E> from_name(const std::array<std::string_view, N>& names, std::string_view name) {
    for (std::size_t i = 0; i < N; ++i)
        if (names[i] == name)
            return static_cast<E>(i);
    return std::nullopt;
}

std::string rank_file_name(int rank) {
    return fmt::format("rank_{:05d}.jsonl", rank);
}

} // namespace

std::string_view lane_name(lane l) noexcept {
    return lane_names[static_cast<std::size_t>(l)];
}
std::optional<lane> lane_from_name(std::string_view n) noexcept {
    return from_name<lane>(lane_names, n);
}
std::string_view event_kind_name(event_kind k) noexcept {
    return kind_names[static_cast<std::size_t>(k)];
}
std::optional<event_kind> event_kind_from_name(std::string_view n) noexcept {
    return from_name<event_kind>(kind_names, n);
}
std::string_view phase_name(phase p) noexcept {
    return phase_names[static_cast<std::size_t>(p)];
}
std::optional<phase> phase_from_name(std::string_view n) noexcept {
    return from_name<phase>(phase_names, n);
}

nlohmann::json to_json(const trace_event& e) {
    nlohmann::json j = {{"rank", e.rank},           {"lane", lane_name(e.where)},
                        {"name", e.name},           {"kind", event_kind_name(e.kind)},
                        {"start_ns", e.start_ns},   {"dur_ns", e.dur_ns},
                        {"step", e.step},           {"micro_batch", e.micro_batch},
                        {"stage", e.stage},         {"virtual_stage", e.virtual_stage},
                        {"phase", phase_name(e.ph)}};
    if (e.bytes)
        j["bytes"] = *e.bytes;
    if (e.flops)
        j["flops"] = *e.flops;
    if (e.flow_id != 0)
        j["flow_id"] = e.flow_id;
    return j;
}

trace_event trace_event_from_json(const nlohmann::json& j, std::string_view where) {
    if (!j.is_object())
        throw input_error(where, fmt::format("expected an event object, found {}", j.type_name()));
    auto field = [&](const char* key) -> const nlohmann::json& {
        auto it = j.find(key);
        if (it == j.end())
            throw input_error(where, fmt::format("event has no \"{}\"", key));
        return *it;
    };
    auto integer = [&](const char* key) -> std::int64_t {
        const auto& v = field(key);
        if (!v.is_number_integer())
            throw input_error(where,
                              fmt::format("\"{}\" must be an integer, found {}", key, v.dump()));
        return v.get<std::int64_t>();
    };
    auto text = [&](const char* key) -> std::string {
        const auto& v = field(key);
        if (!v.is_string())
            throw input_error(where,
                              fmt::format("\"{}\" must be a string, found {}", key, v.dump()));
        return v.get<std::string>();
    };
    trace_event e;
    e.rank = static_cast<int>(integer("rank"));
    const std::string l = text("lane");
    const auto ln = lane_from_name(l);
    if (!ln)
        throw input_error(where, fmt::format("unknown lane \"{}\" (expected compute, tp, cp, pp, "
                                             "dp or host)",
                                             l));
    e.where = *ln;
    const std::string k = text("kind");
    const auto kd = event_kind_from_name(k);
    if (!kd)
        throw input_error(where, fmt::format("unknown kind \"{}\" (expected compute, collective, "
                                             "send, recv or other)",
                                             k));
    e.kind = *kd;
    e.name = text("name");
    e.start_ns = integer("start_ns");
    e.dur_ns = integer("dur_ns");
    if (e.dur_ns < 0)
        throw input_error(where, fmt::format("dur_ns is negative ({})", e.dur_ns));
    e.step = integer("step");
    e.micro_batch = static_cast<int>(integer("micro_batch"));
    e.stage = static_cast<int>(integer("stage"));
    e.virtual_stage = static_cast<int>(integer("virtual_stage"));
    const std::string p = text("phase");
    const auto ph = phase_from_name(p);
    if (!ph)
        throw input_error(where, fmt::format("unknown phase \"{}\" (expected none, fwd, bwd or "
                                             "optimizer)",
                                             p));
    e.ph = *ph;
    if (auto it = j.find("bytes"); it != j.end() && it->is_number())
        e.bytes = it->get<double>();
    if (auto it = j.find("flops"); it != j.end() && it->is_number())
        e.flops = it->get<double>();
    if (auto it = j.find("flow_id"); it != j.end() && it->is_number_integer())
        e.flow_id = it->get<std::int64_t>();
    return e;
}

namespace {

void create_trace_dir(const std::string& dir) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec)
        throw runtime_failure(
            fmt::format("{}: cannot create the trace directory: {}", dir, ec.message()));
}

/// A trace written into the directory of an older one must not leave the older one's files
/// beside it: rank files of ranks it does not have (rank_NNNNN.jsonl[.gz]) and a batches file it
/// does not name. Only files of the trace's own naming are touched.
void remove_stale_trace_files(const std::string& dir, int ranks, bool drop_batches) {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
        const auto name = e.path().filename().string();
        bool stale = drop_batches && name == trace_batches_file;
        int rank = -1;
        char tail[8] = {};
        if (std::sscanf(name.c_str(), "rank_%d.jsonl%7s", &rank, tail) >= 1 && rank >= 0 &&
            (std::string_view(tail).empty() || std::string_view(tail) == ".gz"))
            stale = stale || rank >= ranks || std::string_view(tail) == ".gz";
        if (stale)
            std::filesystem::remove(e.path(), ec);
    }
}

} // namespace

void write_trace_rank_file(const std::string& dir, int rank,
                           const std::vector<trace_event>& events) {
    create_trace_dir(dir);
    atomic_writer out((std::filesystem::path(dir) / rank_file_name(rank)).string());
    for (const auto& e : events) {
        out.write(to_json(e).dump());
        out.write("\n");
    }
    out.commit();
}

void write_trace_manifest(const std::string& dir, const trace_meta& meta,
                          const std::vector<std::int64_t>& events_per_rank,
                          const nlohmann::json* extra) {
    create_trace_dir(dir);
    nlohmann::json manifest = extra && extra->is_object() ? *extra : nlohmann::json::object();
    manifest["schema"] = trace_schema;
    manifest["source"] = meta.source;
    manifest["layout"] = {{"spec", meta.job_layout.spec()},
                          {"order", meta.job_layout.order_string()}};
    manifest["world_size"] = meta.job_layout.world_size();
    manifest["steps"] = meta.steps;
    manifest["tp_replicated"] = meta.tp_replicated;
    manifest["note"] = meta.note;
    manifest["clock"] = "ns, from the start of the first step";
    if (!meta.batches.empty())
        manifest["batches"] = meta.batches;
    auto& ranks = manifest["ranks"] = nlohmann::json::array();
    for (std::size_t r = 0; r < events_per_rank.size(); ++r)
        ranks.push_back({{"rank", r},
                         {"file", rank_file_name(static_cast<int>(r))},
                         {"events", events_per_rank[r]}});
    write_file_atomic((std::filesystem::path(dir) / "manifest.json").string(),
                      manifest.dump(2) + "\n");
    remove_stale_trace_files(dir, static_cast<int>(events_per_rank.size()), meta.batches.empty());
}

void write_trace_batches(const std::string& dir, const std::vector<sharded_step>& steps) {
    create_trace_dir(dir);
    write_sharded_batch((std::filesystem::path(dir) / trace_batches_file).string(), steps);
}

void write_trace_dir(const std::string& dir, const trace& t, const nlohmann::json* extra) {
    std::vector<std::int64_t> counts;
    for (std::size_t r = 0; r < t.ranks.size(); ++r) {
        write_trace_rank_file(dir, static_cast<int>(r), t.ranks[r]);
        counts.push_back(static_cast<std::int64_t>(t.ranks[r].size()));
    }
    trace_meta meta = t.meta;
    meta.batches.clear();
    if (!t.batches.empty()) {
        write_trace_batches(dir, t.batches);
        meta.batches = trace_batches_file;
    }
    write_trace_manifest(dir, meta, counts, extra);
}

trace_reader::trace_reader(std::string dir) : m_dir(std::move(dir)) {
    const std::string path = (std::filesystem::path(m_dir) / "manifest.json").string();
    const auto j = read_json_file(path);
    if (!j.is_object() || !j.contains("schema") || j["schema"] != trace_schema)
        throw input_error(path,
                          fmt::format("expected \"schema\": \"{}\", found {}", trace_schema,
                                      j.is_object() && j.contains("schema") ? j["schema"].dump()
                                                                            : std::string("none")));
    try {
        m_meta.source = j.at("source").get<std::string>();
        try {
            m_meta.job_layout = layout::parse(j.at("layout").at("spec").get<std::string>(),
                                              j.at("layout").at("order").get<std::string>());
        } catch (const input_error& e) {
            throw input_error(path, fmt::format("$.layout: {}", e.what()));
        }
        m_meta.steps = j.at("steps").get<std::int64_t>();
        m_meta.tp_replicated = j.value("tp_replicated", false);
        m_meta.note = j.value("note", std::string());
        m_meta.batches = j.value("batches", std::string());
        if (m_meta.batches.find_first_of("/\\") != std::string::npos || m_meta.batches == "." ||
            m_meta.batches == "..")
            throw input_error(path, fmt::format("\"batches\": expected a file name in the "
                                                "trace directory, found \"{}\"",
                                                m_meta.batches));
        m_files.resize(static_cast<std::size_t>(m_meta.job_layout.world_size()));
        const auto& ranks = j.at("ranks");
        // A capture of a job in which no process used CUDA (`wlbtune profile`) holds no rank
        // and says why in its notes; any other trace without ranks is broken.
        if (!ranks.is_array() || (ranks.empty() && m_meta.source != "profile"))
            throw input_error(path, "$.ranks: expected the rank files (a non-empty array), "
                                    "found " +
                                        ranks.dump());
        for (std::size_t i = 0; i < ranks.size(); ++i) {
            const int r = ranks[i].at("rank").get<int>();
            if (r < 0 || r >= m_meta.job_layout.world_size())
                throw input_error(path,
                                  fmt::format("ranks[{}]: rank {} is outside the layout", i, r));
            m_files[static_cast<std::size_t>(r)] = ranks[i].at("file").get<std::string>();
            m_ranks.push_back(r);
        }
    } catch (const nlohmann::json::exception& e) {
        throw input_error(path, fmt::format("malformed manifest: {}", e.what()));
    }
}

void trace_reader::read_rank(int rank, const std::function<void(trace_event&&)>& sink) const {
    if (rank < 0 || rank >= static_cast<int>(m_files.size()) ||
        m_files[static_cast<std::size_t>(rank)].empty())
        throw input_error(m_dir, fmt::format("the trace has no file for rank {}", rank));
    const std::string path =
        (std::filesystem::path(m_dir) / m_files[static_cast<std::size_t>(rank)]).string();
    std::ifstream in(path);
    if (!in)
        throw input_error(path, "cannot open");
    std::string line;
    for (std::int64_t n = 1; std::getline(in, line); ++n) {
        if (line.empty())
            continue;
        const std::string where = fmt::format("{}:{}", path, n);
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(line);
        } catch (const nlohmann::json::parse_error& e) {
            throw input_error(where, fmt::format("not JSON at column {}", e.byte));
        } catch (const nlohmann::json::out_of_range& e) {
            // A number beyond a double ("1e999") is out_of_range.406 while parsing.
            throw input_error(where, fmt::format("not JSON: {}", e.what()));
        }
        auto e = trace_event_from_json(j, where);
        if (e.rank != rank)
            throw input_error(where,
                              fmt::format("event of rank {} in the file of rank {}", e.rank, rank));
        sink(std::move(e));
    }
}

std::string trace_reader::rank_file(int rank) const {
    if (rank < 0 || rank >= static_cast<int>(m_files.size()) ||
        m_files[static_cast<std::size_t>(rank)].empty())
        return {};
    return (std::filesystem::path(m_dir) / m_files[static_cast<std::size_t>(rank)]).string();
}

std::vector<sharded_step> trace_reader::read_batches() const {
    if (m_meta.batches.empty())
        return {};
    return read_sharded_batch((std::filesystem::path(m_dir) / m_meta.batches).string());
}

trace trace_reader::read_all() const {
    trace t;
    t.meta = m_meta;
    t.batches = read_batches();
    t.ranks.resize(m_files.size());
    for (int r : m_ranks)
        read_rank(r, [&](trace_event&& e) {
            t.ranks[static_cast<std::size_t>(r)].push_back(std::move(e));
        });
    return t;
}

} // namespace wlb::runtime
