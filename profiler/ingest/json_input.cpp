#include "profiler/ingest/json_input.hpp"

#include "base/error.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fmt/format.h>
#include <vector>
#include <zlib.h>

namespace wlb::profiler {
namespace {

bool is_gzip_file(const std::string& path) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f)
        return false;
    unsigned char magic[2] = {0, 0};
    const bool gz = std::fread(magic, 1, 2, f) == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
    std::fclose(f);
    return gz;
}

} // namespace

void text_buffer::resize(std::size_t n) {
    if (n + json_padding > m_alloc) {
        // Grows geometrically, with room for the next rank's file of about the same size; the
        // old bytes are kept, the new ones left to the caller.
        const std::size_t alloc = std::max(n + n / 8 + json_padding, m_alloc + m_alloc / 2);
        std::unique_ptr<char[]> bigger(new char[alloc]);
        if (m_size > 0)
            std::memcpy(bigger.get(), m_data.get(), std::min(m_size, n));
        m_data = std::move(bigger);
        m_alloc = alloc;
    }
    m_size = n;
    std::memset(m_data.get() + n, 0, json_padding);
}

void text_buffer::append(std::string_view s) {
    const std::size_t at = m_size;
    resize(m_size + s.size());
    std::memcpy(m_data.get() + at, s.data(), s.size());
}

void load_text_file(const std::string& path, loaded_text& out) {
    out.text.clear();
    out.problem.reset();
    out.gzip = false;
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    if (ec)
        throw input_error(path, fmt::format("cannot read: {}", ec.message()));
    out.file_bytes = static_cast<std::int64_t>(size);
    out.gzip = is_gzip_file(path);
    if (!out.gzip) {
        std::FILE* f = std::fopen(path.c_str(), "rb");
        if (!f)
            throw input_error(path, "cannot open");
        out.text.resize(size);
        const std::size_t got = size ? std::fread(out.text.data(), 1, size, f) : 0;
        std::fclose(f);
        if (got != size)
            throw input_error(path, fmt::format("read {} of {} bytes", got, size));
        return;
    }
    gzFile gz = gzopen(path.c_str(), "rb");
    if (!gz)
        throw input_error(path, "cannot open");
    gzbuffer(gz, 1 << 20);
    // Compressed traces are typically 8-15x smaller; the buffer grows geometrically from a guess.
    if (out.text.capacity() < size * 8 + json_padding)
        out.text.resize(size * 8);
    std::size_t used = 0;
    for (;;) {
        out.text.resize(used + (1 << 20));
        const int n = gzread(gz, out.text.data() + used, 1 << 20);
        if (n < 0) {
            int errnum = 0;
            const char* msg = gzerror(gz, &errnum);
            out.problem = fmt::format("gzip stream broken after {} decompressed bytes ({})", used,
                                      msg ? msg : "unknown");
            break;
        }
        used += static_cast<std::size_t>(n);
        if (n == 0) {
            // gzread returns 0 both at the true end and when the stream stops early; only
            // gzeof after a complete member tells them apart (zlib reports "unexpected end of
            // file" through gzerror for a cut stream).
            int errnum = 0;
            const char* msg = gzerror(gz, &errnum);
            if (errnum != Z_OK && errnum != Z_STREAM_END)
                out.problem = fmt::format("gzip stream ends early after {} decompressed bytes "
                                          "({})",
                                          used, msg ? msg : "unknown");
            break;
        }
    }
    gzclose(gz);
    out.text.resize(used);
}

std::string read_head(const std::string& path, std::size_t max_bytes) {
    gzFile gz = gzopen(path.c_str(), "rb"); // reads plain files too
    if (!gz)
        return {};
    std::string s(max_bytes, '\0');
    const int n = gzread(gz, s.data(), static_cast<unsigned>(max_bytes));
    gzclose(gz);
    s.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    return s;
}

std::optional<json_cut> find_json_cut(std::string_view text) {
    // One scan with a bracket stack, outside strings: remember where the last element of an
    // array closed. A second scan up to there rebuilds the stack to close.
    std::vector<char> stack;
    bool in_string = false, escaped = false;
    std::size_t best = 0;
    bool found = false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (in_string) {
            if (escaped)
                escaped = false;
            else if (c == '\\')
                escaped = true;
            else if (c == '"')
                in_string = false;
            continue;
        }
        switch (c) {
        case '"':
            in_string = true;
            break;
        case '{':
        case '[':
            stack.push_back(c);
            break;
        case '}':
        case ']':
            if (stack.empty())
                return std::nullopt;
            stack.pop_back();
            if (!stack.empty() && stack.back() == '[') {
                best = i + 1;
                found = true;
            }
            break;
        default:
            break;
        }
    }
    if (!found)
        return std::nullopt;
    stack.clear();
    in_string = escaped = false;
    for (std::size_t i = 0; i < best; ++i) {
        const char c = text[i];
        if (in_string) {
            if (escaped)
                escaped = false;
            else if (c == '\\')
                escaped = true;
            else if (c == '"')
                in_string = false;
            continue;
        }
        if (c == '"')
            in_string = true;
        else if (c == '{' || c == '[')
            stack.push_back(c);
        else if (c == '}' || c == ']')
            stack.pop_back();
    }
    json_cut cut;
    cut.keep_bytes = best;
    for (auto it = stack.rbegin(); it != stack.rend(); ++it)
        cut.closers += *it == '[' ? ']' : '}';
    return cut;
}

} // namespace wlb::profiler
