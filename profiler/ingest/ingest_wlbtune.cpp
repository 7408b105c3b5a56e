// wlbtune's own trace directories (wlbtune.trace/1, runtime/trace/trace.hpp), read one rank at a
// time through runtime::trace_reader. Event names of the simulator and the captures say what the
// work is: "attention fwd/bwd" (attention); "linear fwd/bwd" (the simulator) and the CPU
// runtime's GEMM ops "qkv proj", "out proj", "mlp" (linear); a CUPTI capture's kernel names
// (`run --backend cuda`'s cupti/ trace) by their kernel (profiler/ingest/kernel_names.hpp);
// anything else on the compute lane (norms, output layer, optimizer step) is other compute. A
// capture of a user's job (`wlbtune profile`, source "profile") holds the job's own kernels:
// they are told apart by their names the same way (FlashAttention, cuDNN, FlexAttention vs
// cuBLAS, CUTLASS).
#include "base/error.hpp"
#include "profiler/ingest/chrome_json.hpp"
#include "profiler/ingest/ingest.hpp"
#include "profiler/ingest/kernel_names.hpp"

#include <algorithm>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <nlohmann/json.hpp>
#include <type_traits>
#include <unordered_map>

namespace wlb::profiler {
work_class wlbtune_work_of(std::string_view name) {
    if (name.starts_with("attention"))
        return work_class::attention;
    for (const std::string_view gemm : {"linear", "qkv proj", "out proj", "mlp fwd", "mlp bwd"})
        if (name.starts_with(gemm))
            return work_class::linear;
    switch (classify_kernel(name).kind) {
    case kernel_kind::attention:
        return work_class::attention;
    case kernel_kind::linear:
        return work_class::linear;
    case kernel_kind::other:
    case kernel_kind::nccl:
        break;
    }
    return work_class::other;
}

namespace {

/// The work class of a captured kernel, by its name.
work_class kernel_work_of(std::string_view name) {
    switch (classify_kernel(name).kind) {
    case kernel_kind::attention:
        return work_class::attention;
    case kernel_kind::linear:
        return work_class::linear;
    case kernel_kind::other:
    case kernel_kind::nccl:
        break;
    }
    return work_class::other;
}

std::int16_t narrow16(int v) {
    return static_cast<std::int16_t>(std::clamp(v, -1, 32767));
}

// Turns trace events into job events, remembering the work class of each name.
class converter {
public:
    explicit converter(trace_part& part) : m_job(part) {}
    void add(std::vector<job_event>& out, const runtime::trace_event& t) {
        job_event e;
        e.start_ns = t.start_ns;
        e.dur_ns = t.dur_ns;
        e.bytes = t.bytes.value_or(0.0);
        e.name = m_job.names.intern(t.name);
        e.step = static_cast<std::int32_t>(t.step);
        e.micro_batch = narrow16(t.micro_batch);
        e.virtual_stage = narrow16(t.virtual_stage);
        e.where = t.where;
        e.kind = t.kind;
        e.ph = t.ph;
        if (t.kind == runtime::event_kind::compute) {
            auto it = m_work.find(e.name);
            if (it == m_work.end())
                it = m_work
                         .emplace(e.name, m_job.source == "profile" ? kernel_work_of(t.name)
                                                                    : wlbtune_work_of(t.name))
                         .first;
            e.work = it->second;
        }
        e.stream = static_cast<std::int32_t>(t.where);
        out.push_back(e);
    }

private:
    trace_part& m_job;
    std::unordered_map<std::int32_t, work_class> m_work;
};

// One event line of a rank file (the fields of runtime::trace_event_from_json, with its
// messages), parsed with simdjson: nlohmann's per-line DOM cost 20 us an event.
class line_parser {
public:
    // Throws wlb::input_error at `where` for anything that is not a well-formed event.
    runtime::trace_event parse(chrome::od::document& doc, const std::string& where) {
        chrome::od::object obj;
        if (doc.get_object().get(obj))
            throw input_error(where, "expected an event object");
        runtime::trace_event e;
        unsigned seen = 0;
        for (auto field : obj) {
            std::string_view field_name;
            if (field.unescaped_key().get(field_name))
                throw input_error(where, "malformed field name");
            chrome::od::value v = field.value();
            const auto k = key_of(field_name);
            if (k == key::other)
                continue;
            seen |= 1u << static_cast<unsigned>(k);
            switch (k) {
            case key::rank:
                e.rank = static_cast<int>(integer(v, "rank", where));
                break;
            case key::lane:
                e.where = named(v, "lane", where, runtime::lane_from_name,
                                "compute, tp, cp, pp, dp or host");
                break;
            case key::kind:
                e.kind = named(v, "kind", where, runtime::event_kind_from_name,
                               "compute, collective, send, recv or other");
                break;
            case key::name:
                e.name = text(v, "name", where);
                break;
            case key::start_ns:
                e.start_ns = integer(v, "start_ns", where);
                break;
            case key::dur_ns:
                e.dur_ns = integer(v, "dur_ns", where);
                break;
            case key::step:
                e.step = integer(v, "step", where);
                break;
            case key::micro_batch:
                e.micro_batch = static_cast<int>(integer(v, "micro_batch", where));
                break;
            case key::stage:
                e.stage = static_cast<int>(integer(v, "stage", where));
                break;
            case key::virtual_stage:
                e.virtual_stage = static_cast<int>(integer(v, "virtual_stage", where));
                break;
            case key::phase:
                e.ph = named(v, "phase", where, runtime::phase_from_name,
                             "none, fwd, bwd or optimizer");
                break;
            case key::bytes:
                if (double x = 0; !v.get_double().get(x))
                    e.bytes = x;
                break;
            case key::flops:
                if (double x = 0; !v.get_double().get(x))
                    e.flops = x;
                break;
            case key::flow_id:
                if (std::int64_t x = 0; !v.get_int64().get(x))
                    e.flow_id = x;
                break;
            case key::other:
                break;
            }
        }
        for (unsigned k = 0; k < required; ++k)
            if (!(seen & (1u << k)))
                throw input_error(where, fmt::format("event has no \"{}\"", key_names[k]));
        if (e.dur_ns < 0)
            throw input_error(where, fmt::format("dur_ns is negative ({})", e.dur_ns));
        return e;
    }

private:
    // The required fields first.
    enum class key : unsigned {
        rank = 0,
        lane,
        kind,
        name,
        start_ns,
        dur_ns,
        step,
        micro_batch,
        stage,
        virtual_stage,
        phase,
        bytes,
        flops,
        flow_id,
        other
    };
    static constexpr unsigned required = 11;
    static constexpr std::array<std::string_view, 14> key_names = {
        "rank",        "lane",  "kind",          "name",  "start_ns", "dur_ns", "step",
        "micro_batch", "stage", "virtual_stage", "phase", "bytes",    "flops",  "flow_id"};

    static key key_of(std::string_view k) {
        for (unsigned i = 0; i < key_names.size(); ++i)
            if (key_names[i] == k)
                return static_cast<key>(i);
        return key::other;
    }
    static std::int64_t integer(chrome::od::value& v, const char* key, const std::string& where) {
        std::int64_t x = 0;
        if (v.get_int64().get(x))
            throw input_error(where, fmt::format("\"{}\" must be an integer, found {}", key,
                                                 chrome::trim(v.raw_json_token())));
        return x;
    }
    static std::string text(chrome::od::value& v, const char* key, const std::string& where) {
        std::string_view s;
        if (v.get_string().get(s))
            throw input_error(where, fmt::format("\"{}\" must be a string, found {}", key,
                                                 chrome::trim(v.raw_json_token())));
        return std::string(s);
    }
    // A text field naming one of an enum's values (`from_name` returns nullopt for none).
    template <class FromName>
    static typename std::invoke_result_t<FromName, std::string_view>::value_type
    named(chrome::od::value& v, const char* key, const std::string& where, FromName from_name,
          const char* expected) {
        const auto s = text(v, key, where);
        const auto value = from_name(s);
        if (!value)
            throw input_error(where,
                              fmt::format("unknown {} \"{}\" (expected {})", key, s, expected));
        return *value;
    }
};

// Reads one rank's file (JSON Lines) into `out`. A last line cut short (no newline after it, the
// file ended while being written) marks the rank truncated; anything else malformed throws
// wlb::input_error naming the file and line.
void read_rank_file(const std::string& path, int rank, converter& conv, rank_trace& rt) {
    auto& b = chrome::buffers();
    load_text_file(path, b.text);
    if (b.text.problem)
        throw input_error(path, *b.text.problem);
    const text_buffer& buffer = b.text.text;
    const std::string_view text = buffer.view();
    line_parser lines;
    std::size_t begin = 0;
    std::int64_t line = 0;
    while (begin < text.size()) {
        ++line;
        std::size_t end = text.find('\n', begin);
        const bool last_unterminated = end == std::string::npos;
        if (last_unterminated)
            end = text.size();
        std::string_view l(text.data() + begin, end - begin);
        const std::size_t next = end + 1;
        if (!l.empty() && l.back() == '\r')
            l.remove_suffix(1);
        if (chrome::trim(l).empty()) {
            begin = next;
            continue;
        }
        const std::string where = fmt::format("{}:{}", path, line);
        try {
            simdjson::padded_string_view view(l.data(), l.size(),
                                              buffer.capacity() -
                                                  static_cast<std::size_t>(l.data() - text.data()));
            chrome::od::document doc = b.parser.iterate(view);
            auto e = lines.parse(doc, where);
            if (const char* rest = nullptr; !doc.current_location().get(rest))
                throw input_error(where, "trailing characters after the event");
            if (e.rank != rank)
                throw input_error(
                    where, fmt::format("event of rank {} in the file of rank {}", e.rank, rank));
            conv.add(rt.events, e);
        } catch (const simdjson::simdjson_error& err) {
            if (last_unterminated) {
                rt.truncated = true;
                break;
            }
            throw input_error(where, fmt::format("not JSON: {}", err.what()));
        } catch (const input_error&) {
            if (last_unterminated) {
                rt.truncated = true;
                break;
            }
            throw;
        }
        begin = next;
    }
}

void take_meta(job_trace& job, const runtime::trace_meta& meta) {
    job.source_layout = meta.job_layout.spec();
    job.source_order = meta.job_layout.order_string();
    job.source_world_size = std::max(job.source_world_size, meta.job_layout.world_size());
    job.tp_replicated = job.tp_replicated || meta.tp_replicated;
    if (!meta.note.empty())
        job.note = meta.note;
    job.source = meta.source;
    if (static_cast<int>(job.ranks.size()) < meta.job_layout.world_size())
        job.ranks.resize(static_cast<std::size_t>(meta.job_layout.world_size()));
}

// The command that wrote the directory (its manifest's provenance), argv[0] reduced to its file
// name; empty when the manifest does not record one.
std::vector<std::string> manifest_command_line(const std::string& dir) {
    std::ifstream in(std::filesystem::path(dir) / "manifest.json");
    const auto j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("command_line") ||
        !j["command_line"].is_array())
        return {};
    std::vector<std::string> args;
    for (const auto& a : j["command_line"])
        if (a.is_string())
            args.push_back(a.get<std::string>());
    if (!args.empty())
        args.front() = std::filesystem::path(args.front()).filename().string();
    return args;
}

/// A job's capture holds kernels, one after another, not one slice per layer; and what the
/// analysis can attribute depends on the job's own NVTX ranges: say which.
void note_profile_scope(job_trace& job, const std::string& dir) {
    job.per_layer_events = false;
    bool passes = false;
    for (const auto& rt : job.ranks)
        for (const auto& e : rt.events)
            if (e.kind == runtime::event_kind::compute && e.micro_batch >= 0 &&
                (e.ph == runtime::phase::fwd || e.ph == runtime::phase::bwd)) {
                passes = true;
                break;
            }
    if (!passes)
        job.warn(dir, "the captured job has no NVTX ranges for micro-batches and passes "
                      "(forward, backward, microbatch N): the breakdown (attention, GEMM and "
                      "other kernels, communication, idle) and the stragglers are measured, but "
                      "the seconds each cause costs (the what-if) need kernels tied to a "
                      "micro-batch and a pass; wrap them in NVTX ranges (docs/profile.md)");
}

} // namespace

wlbtune_dir::wlbtune_dir(std::string dir)
    : m_dir(std::move(dir)), m_reader(m_dir), m_command_line(manifest_command_line(m_dir)) {}

void wlbtune_dir::read_meta(job_trace& job) const {
    take_meta(job, m_reader.meta());
    job.files.push_back(m_dir);
    if (!m_command_line.empty())
        job.command_line = m_command_line;
    if (!m_reader.meta().batches.empty()) {
        // The batches only serve the check against predicted work: a bad file loses that check,
        // not the analysis.
        try {
            auto batches = m_reader.read_batches();
            job.batches.insert(job.batches.end(), std::make_move_iterator(batches.begin()),
                               std::make_move_iterator(batches.end()));
            job.batches_file = (std::filesystem::path(m_dir) / m_reader.meta().batches).string();
        } catch (const std::exception& e) {
            job.warn((std::filesystem::path(m_dir) / m_reader.meta().batches).string(),
                     fmt::format("{}; lost time is not set against the batches' predicted work",
                                 e.what()));
        }
    }
}

void wlbtune_dir::finish(job_trace& job) const {
    if (job.source == "profile")
        note_profile_scope(job, m_dir);
}

void wlbtune_dir::read_rank(int rank, trace_part& part) const {
    part.left_out = "its file is";
    converter conv(part);
    auto& entry = part.add_rank(rank, m_reader.rank_file(rank));
    auto& rt = entry.trace;
    read_rank_file(rt.file, rank, conv, rt);
    std::error_code ec;
    const auto bytes = std::filesystem::file_size(rt.file, ec);
    if (!ec)
        part.input_bytes += static_cast<std::int64_t>(bytes);
}

void add_wlbtune_events(const std::vector<runtime::trace_event>& events, int rank,
                        const std::string& file, trace_part& part) {
    converter conv(part);
    auto& rt = part.add_rank(rank, file).trace;
    rt.events.reserve(events.size());
    for (const auto& e : events)
        conv.add(rt.events, e);
}

void read_trace_meta(const runtime::trace& t, job_trace& job) {
    take_meta(job, t.meta);
    job.batches.insert(job.batches.end(), t.batches.begin(), t.batches.end());
}

} // namespace wlb::profiler
