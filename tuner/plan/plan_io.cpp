#include "tuner/plan/plan_io.hpp"

#include "base/atomic_file.hpp"
#include "base/error.hpp"
#include "base/input_file.hpp"
#include "base/json_file.hpp"
#include "runtime/parallel/layout.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <sys/stat.h>
#include <zlib.h>

namespace wlb::tuner {
namespace {

bool ends_with(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

void append_doc(std::string& out, const runtime::document& d) {
    fmt::format_to(std::back_inserter(out), "[{},{},{}]", d.id, d.tokens, d.drawn_step);
}

void append_docs(std::string& out, const std::vector<runtime::document>& docs) {
    out += '[';
    for (std::size_t i = 0; i < docs.size(); ++i) {
        if (i)
            out += ',';
        append_doc(out, docs[i]);
    }
    out += ']';
}

// ,"sharding":{"applied":"per-doc","ranks":[[[id,q_offset,q_tokens],...],...]}
void append_sharding(std::string& out, const shard_decision& d) {
    fmt::format_to(std::back_inserter(out), ",\"sharding\":{{\"applied\":\"{}\"",
                   to_string(d.applied));
    if (d.applied == sharding_policy::hybrid) {
        if (d.threshold_tokens)
            fmt::format_to(std::back_inserter(out), ",\"threshold_tokens\":{}",
                           *d.threshold_tokens);
        else
            out += ",\"threshold_tokens\":null";
    }
    if (d.fell_back)
        out += ",\"fell_back\":true";
    out += ",\"ranks\":[";
    for (std::size_t r = 0; r < d.sharded.ranks.size(); ++r) {
        if (r)
            out += ',';
        out += '[';
        const auto& chunks = d.sharded.ranks[r].chunks;
        for (std::size_t k = 0; k < chunks.size(); ++k) {
            if (k)
                out += ',';
            fmt::format_to(std::back_inserter(out), "[{},{},{}]", chunks[k].doc_id,
                           chunks[k].q_offset, chunks[k].q_tokens);
        }
        out += ']';
    }
    out += "]}";
}

// The layouts a micro-batch may record under the header's policy: what the policy applies
// (adaptive picks per-seq or per-doc; hybrid applies itself or falls back to one of them).
bool may_apply(sharding_policy header, sharding_policy applied, bool fell_back) {
    switch (header) {
    case sharding_policy::per_seq:
    case sharding_policy::per_doc:
        return applied == header && !fell_back;
    case sharding_policy::adaptive:
        return applied != sharding_policy::adaptive && applied != sharding_policy::hybrid &&
               !fell_back;
    case sharding_policy::hybrid:
        return applied != sharding_policy::adaptive &&
               fell_back == (applied != sharding_policy::hybrid);
    }
    return false;
}

// Reads a micro-batch's "sharding" record (see plan_io.hpp) over `cp` ranks and checks it
// against the micro-batch's documents; `path` is its JSON path for errors.
shard_decision parse_sharding(const nlohmann::json& j, const runtime::micro_batch& mb, int cp,
                              sharding_policy header_policy, std::string_view where,
                              const std::string& path) {
    if (!j.is_object())
        throw input_error(where, fmt::format("{}: expected {{\"applied\": ..., \"ranks\": "
                                             "[...]}}, found {}",
                                             path, j.dump()));
    shard_decision d;
    const auto applied = j.find("applied");
    if (applied == j.end() || !applied->is_string())
        throw input_error(where, fmt::format("{}.applied: expected a layout name "
                                             "(per-seq, per-doc, hybrid)",
                                             path));
    const auto name = applied->get<std::string>();
    const auto names = sharding_policy_names();
    if (std::find(names.begin(), names.end(), name) == names.end())
        throw input_error(where, fmt::format("{}.applied: unknown layout \"{}\" (expected "
                                             "per-seq, per-doc or hybrid)",
                                             path, name));
    d.applied = parse_sharding_policy(name, path);
    if (d.applied == sharding_policy::adaptive)
        throw input_error(where, fmt::format("{}.applied: \"adaptive\" is a policy, not a "
                                             "layout: a plan records what it picked (per-seq or "
                                             "per-doc)",
                                             path));
    if (auto f = j.find("fell_back"); f != j.end()) {
        if (!f->is_boolean())
            throw input_error(where, fmt::format("{}.fell_back: expected true or false, found {}",
                                                 path, f->dump()));
        d.fell_back = f->get<bool>();
    }
    if (!may_apply(header_policy, d.applied, d.fell_back))
        throw input_error(where, fmt::format("{}: layout \"{}\"{} cannot come from the header's "
                                             "sharding policy \"{}\"",
                                             path, name, d.fell_back ? " (fell back)" : "",
                                             to_string(header_policy)));
    if (auto t = j.find("threshold_tokens"); t != j.end()) {
        if (d.applied != sharding_policy::hybrid)
            throw input_error(where, fmt::format("{}.threshold_tokens: only a hybrid layout has "
                                                 "a threshold",
                                                 path));
        if (t->is_number_integer() && t->get<std::int64_t>() > 0)
            d.threshold_tokens = t->get<std::int64_t>();
        else if (!t->is_null())
            throw input_error(where, fmt::format("{}.threshold_tokens: expected a positive "
                                                 "integer or null, found {}",
                                                 path, t->dump()));
    }
    const auto ranks = j.find("ranks");
    if (ranks == j.end() || !ranks->is_array() || ranks->size() != static_cast<std::size_t>(cp))
        throw input_error(
            where, fmt::format("{}.ranks: expected an array of {} CP rank(s) (the layout's "
                               "cp), found {}",
                               path, cp,
                               ranks == j.end()    ? std::string("none")
                               : ranks->is_array() ? fmt::format("{} element(s)", ranks->size())
                                                   : ranks->dump()));
    d.sharded.ranks.resize(static_cast<std::size_t>(cp));
    for (std::size_t r = 0; r < ranks->size(); ++r) {
        const auto& chunks = (*ranks)[r];
        if (!chunks.is_array())
            throw input_error(where, fmt::format("{}.ranks[{}]: expected an array of chunks, "
                                                 "found {}",
                                                 path, r, chunks.dump()));
        for (std::size_t k = 0; k < chunks.size(); ++k) {
            const auto& c = chunks[k];
            if (!c.is_array() || c.size() != 3 || !c[0].is_number_integer() ||
                !c[1].is_number_integer() || !c[2].is_number_integer() ||
                c[1].get<std::int64_t>() < 0 || c[2].get<std::int64_t>() < 1)
                throw input_error(where, fmt::format("{}.ranks[{}][{}]: expected [doc_id, "
                                                     "q_offset, q_tokens] with q_offset >= 0 and "
                                                     "q_tokens > 0, found {}",
                                                     path, r, k, c.dump()));
            d.sharded.ranks[r].chunks.push_back(
                {c[0].get<std::int64_t>(), c[1].get<std::int64_t>(), c[2].get<std::int64_t>()});
        }
    }
    if (auto e = find_sharding_error(mb, d.sharded))
        throw input_error(where, fmt::format("{}.ranks: {}", path, *e));
    return d;
}

// Reads [id, tokens, drawn_step]; `path` is the JSON path for errors.
runtime::document parse_doc(const nlohmann::json& j, std::string_view where,
                            const std::string& path) {
    if (!j.is_array() || j.size() != 3 || !j[0].is_number_integer() || !j[1].is_number_integer() ||
        !j[2].is_number_integer())
        throw input_error(where, fmt::format("{}: expected [id, tokens, drawn_step] (integers), "
                                             "found {}",
                                             path, j.dump()));
    runtime::document d{j[0].get<std::int64_t>(), j[1].get<std::int64_t>(),
                        j[2].get<std::int64_t>()};
    if (d.id < 0)
        throw input_error(where, fmt::format("{}: document id must be >= 0, found {}", path, d.id));
    if (d.tokens < 1)
        throw input_error(where, fmt::format("{}: document {} has {} tokens, expected > 0", path,
                                             d.id, d.tokens));
    if (d.drawn_step < 0)
        throw input_error(where, fmt::format("{}: document {} has drawn_step {}, expected >= 0",
                                             path, d.id, d.drawn_step));
    return d;
}

const nlohmann::json& require(const nlohmann::json& j, const char* key, std::string_view where,
                              std::string_view owner) {
    auto it = j.find(key);
    if (it == j.end())
        throw input_error(where, fmt::format("{}\"{}\" is missing", owner, key));
    return *it;
}

} // namespace

// ---------------------------------------------------------------- writer

plan_writer::plan_writer(const std::string& path, const plan_header& header) {
    m_out = std::make_unique<wlb::atomic_writer>(path, ends_with(path, ".gz"));
    auto j = wlb::report_header(plan_schema, header.inputs);
    j["layout"] = {{"spec", header.layout_spec}, {"order", header.layout_order}};
    j["context_tokens"] = header.context_tokens;
    j["model"] = to_json(header.model);
    j["hardware"] = to_json(header.hardware);
    j["data"] = header.data;
    j["packing"] = to_json(header.packing);
    if (header.sharding) {
        j["sharding"] = to_json(*header.sharding);
        m_sharded = true;
        m_cp = runtime::layout::parse(header.layout_spec, header.layout_order).cp();
    }
    m_out->write(j.dump() + "\n");
}

plan_writer::~plan_writer() = default;

void plan_writer::write(const runtime::global_batch& batch, const step_sharding* sharding) {
    WLB_EXPECTS(m_out, "plan_writer::write after finish");
    WLB_EXPECTS(batch.step == m_steps,
                "plan steps must be written in order: expected step {}, got {}", m_steps,
                batch.step);
    WLB_EXPECTS(m_sharded == (sharding != nullptr),
                "plan_writer::write: a plan {} sharding header needs {} sharding per step",
                m_sharded ? "with a" : "without", m_sharded ? "a" : "no");
    if (sharding)
        WLB_EXPECTS(sharding->size() == batch.replicas.size(),
                    "plan_writer::write: sharding for {} replicas, the step has {}",
                    sharding->size(), batch.replicas.size());
    m_buffer.clear();
    fmt::format_to(std::back_inserter(m_buffer), "{{\"step\":{},\"replicas\":[", batch.step);
    for (std::size_t r = 0; r < batch.replicas.size(); ++r) {
        if (r)
            m_buffer += ',';
        m_buffer += "{\"micro_batches\":[";
        const auto& mbs = batch.replicas[r].micro_batches;
        if (sharding)
            WLB_EXPECTS((*sharding)[r].size() == mbs.size(),
                        "plan_writer::write: sharding for {} micro-batches, replica {} has {}",
                        (*sharding)[r].size(), r, mbs.size());
        for (std::size_t m = 0; m < mbs.size(); ++m) {
            if (m)
                m_buffer += ',';
            m_buffer += "{\"docs\":";
            append_docs(m_buffer, mbs[m].docs);
            if (sharding) {
                const auto& d = (*sharding)[r][m];
                WLB_EXPECTS(d.sharded.ranks.size() == static_cast<std::size_t>(m_cp),
                            "plan_writer::write: sharding over {} ranks, the layout's cp is {}",
                            d.sharded.ranks.size(), m_cp);
                const auto error = find_sharding_error(mbs[m], d.sharded);
                WLB_EXPECTS(!error, "plan_writer::write: step {} replica {} micro-batch {}: {}",
                            batch.step, r, m, error.value_or(""));
                append_sharding(m_buffer, d);
            }
            m_buffer += '}';
        }
        m_buffer += "]}";
    }
    m_buffer += "]}\n";
    m_out->write(m_buffer);
    ++m_steps;
}

void plan_writer::finish(const std::vector<runtime::document>& waiting) {
    WLB_EXPECTS(m_out, "plan_writer::finish twice");
    m_buffer.clear();
    fmt::format_to(std::back_inserter(m_buffer),
                   "{{\"end\":true,\"steps\":{},\"waiting\":", m_steps);
    append_docs(m_buffer, waiting);
    m_buffer += "}\n";
    m_out->write(m_buffer);
    m_out->commit();
    m_out.reset();
}

// ---------------------------------------------------------------- reader

plan_reader::plan_reader(const std::string& path) : m_path(path) {
    if (struct stat st{}; ::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
        require_input_file(path); // a FIFO or a device: refused, naming what it is
    m_gz = gzopen(path.c_str(), "rb");
    if (!m_gz)
        throw input_error(fmt::format("{}: cannot open plan: {}", path, std::strerror(errno)));
    gzbuffer(static_cast<gzFile>(m_gz), 1 << 17);
    // A constructor that throws never runs the destructor: a refused header closes the file
    // here, or every bad plan would leak the descriptor and zlib's buffers (found by
    // tests/fuzz/fuzz_plan_config under LeakSanitizer).
    struct close_on_throw {
        void*& gz;
        const int exceptions = std::uncaught_exceptions();
        ~close_on_throw() {
            if (gz && std::uncaught_exceptions() > exceptions) {
                gzclose(static_cast<gzFile>(gz));
                gz = nullptr;
            }
        }
    } guard{m_gz};

    std::string line;
    if (!read_line(line))
        throw input_error(fmt::format("{}:1: empty plan: expected a header line with \"schema\": "
                                      "\"{}\"",
                                      m_path, plan_schema));
    const auto w = where();
    const nlohmann::json j = parse_json(line, w + " (header)");
    if (!j.is_object())
        throw input_error(w, "header must be a JSON object");
    auto schema = j.find("schema");
    if (schema == j.end() || !schema->is_string() || *schema != plan_schema)
        throw input_error(w, fmt::format("not a plan: expected \"schema\": \"{}\", found {}",
                                         plan_schema,
                                         schema == j.end() ? "no schema" : schema->dump()));
    auto& h = m_header;
    h.raw_json = line;
    const auto& layout = require(j, "layout", w, "header: ");
    if (!layout.is_object() || !layout.contains("spec") || !layout["spec"].is_string())
        throw input_error(w, "header: \"layout.spec\" must be a string");
    h.layout_spec = layout["spec"].get<std::string>();
    h.layout_order = layout.value("order", std::string(runtime::layout::default_order));
    const auto& context = require(j, "context_tokens", w, "header: ");
    if (!context.is_number_integer() || context.get<std::int64_t>() < 1)
        throw input_error(w, fmt::format("header: \"context_tokens\" must be a positive integer, "
                                         "found {}",
                                         context.dump()));
    h.context_tokens = context.get<std::int64_t>();
    h.model = runtime::model_from_json(require(j, "model", w, "header: "), w + ": model");
    h.hardware = hardware_from_json(require(j, "hardware", w, "header: "), w + ": hardware");
    if (auto d = j.find("data"); d != j.end() && d->is_string())
        h.data = d->get<std::string>();
    h.packing = packing_config_from_json(require(j, "packing", w, "header: "), w);
    if (h.packing.context_tokens != h.context_tokens)
        throw input_error(w, fmt::format("header: packing.context_tokens {} differs from "
                                         "context_tokens {}",
                                         h.packing.context_tokens, h.context_tokens));
    runtime::layout parsed = [&] {
        try {
            return runtime::layout::parse(h.layout_spec, h.layout_order);
        } catch (const input_error& e) {
            throw input_error(w, fmt::format("header: layout: {}", e.what()));
        }
    }();
    if (parsed.dp() != h.packing.replicas)
        throw input_error(w, fmt::format("header: packing.replicas {} differs from the layout's "
                                         "dp {}",
                                         h.packing.replicas, parsed.dp()));
    m_cp = parsed.cp();
    if (auto s = j.find("sharding"); s != j.end())
        h.sharding = sharding_spec_from_json(*s, w + ": header: sharding");
    if (auto in = j.find("inputs"); in != j.end() && in->is_array()) {
        for (const auto& i : *in)
            if (i.is_object())
                h.inputs.push_back(
                    {i.value("path", ""), i.value("bytes", std::uint64_t{0}), i.value("hash", "")});
    }
}

plan_reader::~plan_reader() {
    if (m_gz)
        gzclose(static_cast<gzFile>(m_gz));
}

std::string plan_reader::where() const {
    return fmt::format("{}:{}", m_path, m_line);
}

bool plan_reader::read_line(std::string& line) {
    line.clear();
    for (;;) {
        if (m_buffer_pos < m_buffer.size()) {
            const auto nl = m_buffer.find('\n', m_buffer_pos);
            if (nl != std::string::npos) {
                line.append(m_buffer, m_buffer_pos, nl - m_buffer_pos);
                m_buffer_pos = nl + 1;
                ++m_line;
                return true;
            }
            line.append(m_buffer, m_buffer_pos, std::string::npos);
        }
        m_buffer.clear();
        m_buffer_pos = 0;
        if (m_eof) {
            if (line.empty())
                return false;
            ++m_line; // a last line without its newline
            return true;
        }
        m_buffer.resize(1 << 16);
        const int n = gzread(static_cast<gzFile>(m_gz), m_buffer.data(),
                             static_cast<unsigned>(m_buffer.size()));
        if (n < 0) {
            int code = 0;
            const char* text = gzerror(static_cast<gzFile>(m_gz), &code);
            throw input_error(fmt::format("{}:{}: read failed: {}", m_path, m_line + 1,
                                          text ? text : "unknown error"));
        }
        m_buffer.resize(static_cast<std::size_t>(n));
        if (n == 0)
            m_eof = true;
    }
}

std::optional<runtime::global_batch> plan_reader::next() {
    if (m_ended)
        return std::nullopt;
    std::string line;
    do {
        if (!read_line(line))
            throw input_error(
                fmt::format("{}:{}: truncated plan: the file ends after {} step(s) without its end "
                            "record {{\"end\":true,...}}",
                            m_path, m_line + 1, m_steps));
    } while (line.find_first_not_of(" \t\r") == std::string::npos);
    const auto w = where();
    // A line cut short says "truncated" (the file ends inside it, or it was cut when written).
    const nlohmann::json j = parse_json(line, w);
    if (!j.is_object())
        throw input_error(w, fmt::format("expected a step or end record (a JSON object), found {}",
                                         j.type_name()));
    if (auto e = j.find("end"); e != j.end()) {
        if (*e != true)
            throw input_error(w, fmt::format("\"end\" must be true, found {}", e->dump()));
        const auto& steps = require(j, "steps", w, "end record: ");
        if (!steps.is_number_integer() || steps.get<std::int64_t>() != m_steps)
            throw input_error(w, fmt::format("end record says {} steps but the plan holds {}",
                                             steps.dump(), m_steps));
        const auto& waiting = require(j, "waiting", w, "end record: ");
        if (!waiting.is_array())
            throw input_error(w, "end record: \"waiting\" must be an array");
        for (std::size_t i = 0; i < waiting.size(); ++i)
            m_waiting.push_back(parse_doc(waiting[i], w, fmt::format("waiting[{}]", i)));
        m_ended = true;
        while (read_line(line))
            if (line.find_first_not_of(" \t\r") != std::string::npos)
                throw input_error(where(), "unexpected data after the end record");
        return std::nullopt;
    }
    const auto& step = require(j, "step", w, "");
    if (!step.is_number_integer() || step.get<std::int64_t>() != m_steps)
        throw input_error(
            w, fmt::format("expected step {}, found \"step\": {}", m_steps, step.dump()));
    runtime::global_batch batch;
    batch.step = m_steps;
    const auto& replicas = require(j, "replicas", w, fmt::format("step {}: ", m_steps));
    if (!replicas.is_array() ||
        replicas.size() != static_cast<std::size_t>(m_header.packing.replicas))
        throw input_error(
            w, fmt::format("replicas: expected an array of {} DP replica(s), found {}",
                           m_header.packing.replicas,
                           replicas.is_array() ? fmt::format("{} element(s)", replicas.size())
                                               : replicas.dump()));
    const auto limit = m_header.packing.micro_batch_limit();
    const auto mb_count = static_cast<std::size_t>(m_header.packing.micro_batches);
    batch.replicas.resize(replicas.size());
    m_sharding.clear();
    if (m_header.sharding)
        m_sharding.resize(replicas.size());
    for (std::size_t r = 0; r < replicas.size(); ++r) {
        const auto rpath = fmt::format("replicas[{}]", r);
        if (!replicas[r].is_object() || !replicas[r].contains("micro_batches") ||
            !replicas[r]["micro_batches"].is_array())
            throw input_error(w, fmt::format("{}: expected {{\"micro_batches\": [...]}}", rpath));
        const auto& mbs = replicas[r]["micro_batches"];
        if (mbs.size() != mb_count)
            throw input_error(w, fmt::format("{}.micro_batches: expected {} micro-batch(es), found "
                                             "{}",
                                             rpath, mb_count, mbs.size()));
        auto& out = batch.replicas[r].micro_batches;
        out.resize(mb_count);
        for (std::size_t m = 0; m < mb_count; ++m) {
            const auto mpath = fmt::format("{}.micro_batches[{}]", rpath, m);
            if (!mbs[m].is_object() || !mbs[m].contains("docs") || !mbs[m]["docs"].is_array())
                throw input_error(w, fmt::format("{}: expected {{\"docs\": [...]}}", mpath));
            const auto& docs = mbs[m]["docs"];
            out[m].docs.reserve(docs.size());
            std::int64_t tokens = 0;
            for (std::size_t k = 0; k < docs.size(); ++k) {
                const auto dpath = fmt::format("{}.docs[{}]", mpath, k);
                auto d = parse_doc(docs[k], w, dpath);
                if (d.drawn_step > m_steps)
                    throw input_error(w, fmt::format("{}: document {} drawn in step {}, after the "
                                                     "step {} it is packed in",
                                                     dpath, d.id, d.drawn_step, m_steps));
                tokens += d.tokens;
                out[m].docs.push_back(d);
            }
            if (tokens > limit)
                throw input_error(w, fmt::format("{}: {} tokens, over the micro-batch limit {} of "
                                                 "policy {}",
                                                 mpath, tokens, limit,
                                                 to_string(m_header.packing.policy)));
            const auto sharding = mbs[m].find("sharding");
            if (m_header.sharding) {
                if (sharding == mbs[m].end())
                    throw input_error(w, fmt::format("{}: \"sharding\" is missing (the header "
                                                     "says the plan records the CP sharding of "
                                                     "every micro-batch)",
                                                     mpath));
                m_sharding[r].push_back(parse_sharding(
                    *sharding, out[m], m_cp, m_header.sharding->policy, w, mpath + ".sharding"));
            } else if (sharding != mbs[m].end()) {
                throw input_error(w, fmt::format("{}: a \"sharding\" record, but the header "
                                                 "carries no \"sharding\" policy",
                                                 mpath));
            }
        }
    }
    ++m_steps;
    return batch;
}

const std::vector<runtime::document>& plan_reader::waiting() const {
    WLB_EXPECTS(m_ended, "plan_reader::waiting before the end record was read");
    return m_waiting;
}

plan_contents read_plan(const std::string& path) {
    plan_reader reader(path);
    plan_contents c;
    c.header = reader.header();
    while (auto b = reader.next()) {
        c.steps.push_back(std::move(*b));
        if (c.header.sharding)
            c.sharding.push_back(reader.sharding());
    }
    c.waiting = reader.waiting();
    return c;
}

} // namespace wlb::tuner
