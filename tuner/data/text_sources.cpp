#include "tuner/data/text_sources.hpp"

#include "base/error.hpp"
#include "base/input_file.hpp"
#include "base/json_file.hpp"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fmt/format.h>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace wlb::tuner {
namespace {

std::string read_whole_file(const std::string& path) {
    require_input_file(path);
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw input_error(path, fmt::format("cannot open: {}", std::strerror(errno)));
    std::ostringstream ss;
    ss << in.rdbuf();
    if (in.bad())
        throw input_error(path, "read failed");
    auto text = std::move(ss).str();
    if (const auto why = not_text_because(text); !why.empty())
        throw input_error(path, fmt::format("cannot read document lengths: {}", why));
    return text;
}

std::unique_ptr<document_source> lengths_source(std::vector<std::int64_t> lengths,
                                                const std::string&, std::string name) {
    return std::make_unique<vector_source>(std::move(lengths), std::move(name));
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
        s.remove_suffix(1);
    return s;
}

std::string shown(std::string_view s) {
    constexpr std::size_t limit = 40;
    return s.size() <= limit ? std::string(s) : std::string(s.substr(0, limit)) + "...";
}

// A length from its text: an integer, or a number with a fraction/exponent whose value is
// integral. `where_of()` gives "FILE:LINE" (plus a column) for an error; it is only called on
// an error, so the common path formats nothing.
template <typename Where>
std::int64_t parse_length(std::string_view text, const Where& where_of) {
    if (text.empty())
        throw input_error(where_of(), "expected a document length, found nothing");
    std::int64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec == std::errc() && end == text.data() + text.size()) {
        // an integer
    } else {
        double d = 0;
        auto [dend, dec] = std::from_chars(text.data(), text.data() + text.size(), d);
        if (dec != std::errc() || dend != text.data() + text.size() || !std::isfinite(d))
            throw input_error(where_of(), fmt::format("expected a document length (a positive "
                                                      "integer), found \"{}\"",
                                                      shown(text)));
        if (d != std::floor(d))
            throw input_error(
                where_of(),
                fmt::format("expected an integer document length, found {}", shown(text)));
        if (d > static_cast<double>(max_document_tokens) || d < -1e18)
            throw input_error(where_of(), fmt::format("document length {} is out of range [1, {}]",
                                                      shown(text), max_document_tokens));
        value = static_cast<std::int64_t>(d);
    }
    if (value < 1 || value > max_document_tokens)
        throw input_error(where_of(), fmt::format("document length {} is out of range [1, {}]",
                                                  shown(text), max_document_tokens));
    return value;
}

std::int64_t length_from_json(const nlohmann::json& v, const std::string& where) {
    // from the text, so that huge values are reported, not wrapped
    if (v.is_number())
        return parse_length(v.dump(), [&] { return where; });
    throw input_error(where, fmt::format("expected a document length (a positive integer), "
                                         "found {} {}",
                                         v.type_name(), shown(v.dump())));
}

// Calls f(line_number, line) for every line of `text` (without the newline).
template <typename F>
void for_each_line(std::string_view text, F&& f) {
    std::int64_t line = 0;
    while (!text.empty()) {
        ++line;
        auto nl = text.find('\n');
        f(line, text.substr(0, nl));
        if (nl == std::string_view::npos)
            break;
        text.remove_prefix(nl + 1);
    }
}

} // namespace

std::unique_ptr<document_source> open_json_lengths(const std::string& path) {
    const std::string text = read_whole_file(path);
    std::vector<std::int64_t> lengths;
    std::size_t i = 0;
    std::int64_t line = 1;
    const auto here = [&] {
        return fmt::format("{}:{}", path, line);
    };
    const auto skip_ws = [&] {
        while (i < text.size() &&
               (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n')) {
            if (text[i] == '\n')
                ++line;
            ++i;
        }
    };
    const auto at = [&]() -> std::string {
        return i < text.size() ? fmt::format("'{}'", text[i]) : std::string("the end of the file");
    };
    skip_ws();
    if (i >= text.size() || text[i] != '[')
        throw input_error(here(), fmt::format("expected a JSON array of document lengths "
                                              "('['), found {}",
                                              at()));
    ++i;
    skip_ws();
    if (i < text.size() && text[i] == ']') {
        ++i;
    } else {
        for (;;) {
            skip_ws();
            // a scalar token runs to the next delimiter
            std::size_t start = i;
            if (i < text.size() && (text[i] == '[' || text[i] == '{' || text[i] == '"')) {
                throw input_error(here(), fmt::format("element {}: expected a document length (a "
                                                      "positive integer), found {}",
                                                      lengths.size(), at()));
            }
            while (i < text.size() && text[i] != ',' && text[i] != ']' && text[i] != ' ' &&
                   text[i] != '\t' && text[i] != '\r' && text[i] != '\n')
                ++i;
            const std::string_view token(text.data() + start, i - start);
            if (token.empty())
                throw input_error(here(), fmt::format("element {}: expected a document length, "
                                                      "found {}",
                                                      lengths.size(), at()));
            lengths.push_back(parse_length(
                token, [&] { return fmt::format("{} (element {})", here(), lengths.size()); }));
            skip_ws();
            if (i < text.size() && text[i] == ',') {
                ++i;
                continue;
            }
            if (i < text.size() && text[i] == ']') {
                ++i;
                break;
            }
            throw input_error(here(), fmt::format("after element {}: expected ',' or ']', "
                                                  "found {}",
                                                  lengths.size() - 1, at()));
        }
    }
    skip_ws();
    if (i != text.size())
        throw input_error(here(), fmt::format("unexpected {} after the array", at()));
    return lengths_source(std::move(lengths), path, "json:" + path);
}

std::unique_ptr<document_source> open_text_lengths(const std::string& path) {
    const std::string text = read_whole_file(path);
    std::vector<std::int64_t> lengths;
    for_each_line(text, [&](std::int64_t line, std::string_view s) {
        if (auto hash = s.find('#'); hash != std::string_view::npos)
            s = s.substr(0, hash);
        s = trim(s);
        if (s.empty())
            return;
        lengths.push_back(parse_length(s, [&] { return fmt::format("{}:{}", path, line); }));
    });
    return lengths_source(std::move(lengths), path, "text:" + path);
}

std::unique_ptr<document_source> open_jsonl_lengths(const std::string& path,
                                                    const std::string& key) {
    const std::string text = read_whole_file(path);
    std::vector<std::int64_t> lengths;
    for_each_line(text, [&](std::int64_t line, std::string_view s) {
        s = trim(s);
        if (s.empty())
            return;
        const auto where = fmt::format("{}:{}", path, line);
        nlohmann::json record;
        try {
            record = nlohmann::json::parse(s);
        } catch (const nlohmann::json::exception& e) {
            // parse_error, and out_of_range for a number beyond a double ("-1e3081").
            throw input_error(where, fmt::format("not a JSON record: {}", e.what()));
        }
        if (!record.is_object())
            throw input_error(where,
                              fmt::format("expected a JSON object, found {}", record.type_name()));
        auto it = record.find(key);
        if (it == record.end())
            throw input_error(where, fmt::format("record has no \"{}\" field (the length key; "
                                                 "choose another with jsonl:PATH#KEY)",
                                                 key));
        lengths.push_back(length_from_json(*it, fmt::format("{} (field \"{}\")", where, key)));
    });
    return lengths_source(std::move(lengths), path, fmt::format("jsonl:{}#{}", path, key));
}

namespace {

// Splits one CSV line into fields (RFC 4180 quoting, no multi-line fields).
std::vector<std::string> split_csv(std::string_view line, const std::string& where) {
    std::vector<std::string> fields;
    std::string field;
    bool quoted = false;
    bool was_quoted = false;
    for (std::size_t i = 0; i < line.size(); ++i) {
        char c = line[i];
        if (quoted) {
            if (c == '"') {
                if (i + 1 < line.size() && line[i + 1] == '"') {
                    field += '"';
                    ++i;
                } else {
                    quoted = false;
                }
            } else {
                field += c;
            }
        } else if (c == '"' && trim(field).empty() && !was_quoted) {
            quoted = was_quoted = true;
            field.clear();
        } else if (c == ',') {
            fields.push_back(was_quoted ? field : std::string(trim(field)));
            field.clear();
            was_quoted = false;
        } else if (!(was_quoted && (c == ' ' || c == '\t' || c == '\r'))) {
            field += c;
        }
    }
    if (quoted)
        throw input_error(where, "unterminated quoted field (a CSV field cannot span lines)");
    fields.push_back(was_quoted ? field : std::string(trim(field)));
    return fields;
}

} // namespace

std::unique_ptr<document_source> open_csv_lengths(const std::string& path,
                                                  const std::string& column) {
    const std::string text = read_whole_file(path);
    std::vector<std::int64_t> lengths;
    std::vector<std::string> header;
    std::size_t index = 0;
    std::string column_name;
    for_each_line(text, [&](std::int64_t line, std::string_view s) {
        const auto where = fmt::format("{}:{}", path, line);
        if (trim(s).empty())
            return;
        auto fields = split_csv(s, where);
        if (header.empty()) {
            header = std::move(fields);
            auto it = std::find(header.begin(), header.end(), column);
            if (it != header.end()) {
                index = static_cast<std::size_t>(it - header.begin());
            } else {
                std::size_t parsed = 0;
                auto [end, ec] =
                    std::from_chars(column.data(), column.data() + column.size(), parsed);
                if (column.empty() || ec != std::errc() || end != column.data() + column.size())
                    throw input_error(where, fmt::format("the header has no column \"{}\" "
                                                         "(columns: {}); choose one with "
                                                         "csv:PATH#COLUMN (a name or a 0-based "
                                                         "index)",
                                                         column, fmt::join(header, ", ")));
                if (parsed >= header.size())
                    throw input_error(where, fmt::format("column index {} is out of range: the "
                                                         "header has {} columns",
                                                         parsed, header.size()));
                index = parsed;
            }
            column_name = header[index];
            return;
        }
        const auto cell_where = fmt::format("{}:column {} (\"{}\")", where, index + 1, column_name);
        if (index >= fields.size())
            throw input_error(cell_where, fmt::format("the row has {} fields; expected at least {}",
                                                      fields.size(), index + 1));
        lengths.push_back(parse_length(fields[index], [&] { return cell_where; }));
    });
    if (header.empty())
        throw input_error(path, "empty CSV file: expected a header row");
    return lengths_source(std::move(lengths), path, fmt::format("csv:{}#{}", path, column_name));
}

} // namespace wlb::tuner
