// Shared by the Chrome-trace readers (Kineto, timer timelines): exact microsecond timestamps,
// and a streaming parse that survives a file cut short. Includes simdjson: only the readers'
// sources include this header.
#pragma once

#include "base/error.hpp"
#include "profiler/ingest/job_trace.hpp"
#include "profiler/ingest/json_input.hpp"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <fmt/format.h>
#include <simdjson.h>
#include <string>
#include <string_view>

namespace wlb::profiler::chrome {

namespace od = simdjson::ondemand;

inline std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.back() == ' ' || s.back() == '\n' || s.back() == '\r' ||
                          s.back() == '\t' || s.back() == ','))
        s.remove_suffix(1);
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    return s;
}

/// A JSON number of microseconds ("1234.567", "12", "-3.5", "1.2e3", or the same quoted) to
/// integer nanoseconds, exact for plain decimals (a double loses the ns digits of epoch times).
bool micros_to_ns(std::string_view token, std::int64_t& ns);

/// The text of a string value, or the raw token of any other value.
inline std::string_view string_or_token(od::value& v) {
    if (v.type() == od::json_type::string)
        return v.get_string().value();
    return trim(v.raw_json_token());
}

inline std::int64_t int_or(od::value& v, std::int64_t fallback) {
    std::string_view t = string_or_token(v);
    std::int64_t x = 0;
    auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), x);
    return ec == std::errc{} ? x : fallback;
}

/// The text buffer and the parser, kept from one file to the next (a parser sized for a 200 MB
/// file holds about that much again in its structural index; allocating and page-faulting it
/// for every rank costs more than parsing). One set per thread; ingest() releases them.
struct parse_buffers {
    loaded_text text;
    od::parser parser;
};
parse_buffers& buffers();
void release_buffers();

/// How far a parse got, for warnings.
struct progress {
    std::int64_t events = 0;    ///< elements of traceEvents read
    std::int64_t last_byte = 0; ///< offset just past the last one
    bool truncated = false;
};

/// Parses `text` (padded, see json_input.hpp) with `walk(od::document&, const char* begin,
/// progress&)`. A text that breaks after some events keeps them (warning with the byte); a text
/// unreadable from the start (a cut inside a string) is closed after its last complete array
/// element and read again, once; `reset()` then clears what the first try collected. Throws
/// wlb::input_error when nothing can be read.
template <typename Walk, typename Reset>
void parse_recovering(text_buffer& text, const std::string& path, trace_part& job, progress& p,
                      Walk&& walk, Reset&& reset) {
    od::parser& parser = buffers().parser;
    // The parser sizes its index to the document; with room to spare, the next rank's file of
    // about the same size reuses it instead of allocating and faulting it in again.
    if (parser.capacity() < text.size() &&
        parser.allocate(text.size() + text.size() / 4) != simdjson::SUCCESS)
        throw input_error(path, "out of memory for the JSON parser's index");
    bool retried = false;
    for (;;) {
        try {
            simdjson::padded_string_view view(text.data(), text.size(), text.capacity());
            od::document doc = parser.iterate(view);
            walk(doc, text.data(), p);
            return;
        } catch (const simdjson::simdjson_error& e) {
            if (p.events > 0 || retried) {
                job.warn(fmt::format("{}:byte {}", path, p.last_byte),
                         fmt::format("the JSON ends or breaks after {} events ({}); the events "
                                     "before it are kept",
                                     p.events, e.what()));
                p.truncated = true;
                return;
            }
            auto cut = find_json_cut(text.view());
            if (!cut)
                throw input_error(path, fmt::format("not a Chrome-trace JSON file: {}", e.what()));
            job.warn(fmt::format("{}:byte {}", path, cut->keep_bytes),
                     fmt::format("the JSON text is cut short ({}); reading the events up to its "
                                 "last complete one",
                                 e.what()));
            p.truncated = true;
            text.resize(cut->keep_bytes);
            text.append(cut->closers);
            retried = true;
            p.events = 0;
            p.last_byte = 0;
            reset();
        }
    }
}

/// Call after each element of traceEvents.
inline void advanced(od::document& doc, const char* begin, progress& p) {
    ++p.events;
    auto loc = doc.current_location();
    if (!loc.error())
        p.last_byte = static_cast<std::int64_t>(loc.value_unsafe() - begin);
}

} // namespace wlb::profiler::chrome
