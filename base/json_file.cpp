#include "base/json_file.hpp"

#include "base/error.hpp"
#include "base/input_file.hpp"

#include <algorithm>
#include <filesystem>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <fstream>
#include <sstream>

namespace wlb {

std::string not_text_because(std::string_view text) {
    if (text.starts_with("\xEF\xBB\xBF"))
        return "it starts with a UTF-8 byte order mark (remove it)";
    if (text.size() >= 2 && static_cast<unsigned char>(text[0]) == 0x1f &&
        static_cast<unsigned char>(text[1]) == 0x8b)
        return "it is gzip-compressed (decompress it first)";
    if (const auto nul = text.find('\0'); nul != std::string_view::npos)
        return fmt::format("it holds a NUL byte at byte {} (binary data?)", nul);
    return {};
}

namespace {

/// What the first bytes say when they cannot start a JSON document, else empty.
std::string not_json_because(std::string_view text) {
    if (text.find_first_not_of(" \t\r\n") == std::string_view::npos)
        return "the file is empty";
    return not_text_because(text);
}

} // namespace

nlohmann::json parse_json(std::string_view text, std::string_view where) {
    if (const auto why = not_json_because(text); !why.empty())
        throw input_error(where, fmt::format("not valid JSON: {}", why));
    try {
        return nlohmann::json::parse(text);
    } catch (const nlohmann::json::parse_error& e) {
        const bool at_end = e.byte >= text.size();
        // nlohmann's text is "[json.exception.parse_error.101] parse error at line 1, column 2:
        // syntax error ..."; keep what follows the id.
        std::string detail = e.what();
        if (const auto close = detail.find("] "); close != std::string::npos)
            detail.erase(0, close + 2);
        throw input_error(where,
                          at_end ? fmt::format("not valid JSON: truncated (the document "
                                               "ends at byte {} before it is complete)",
                                               text.size())
                                 : fmt::format("not valid JSON at byte {}: {}", e.byte, detail));
    } catch (const nlohmann::json::out_of_range& e) {
        // A number beyond a double ("1e999") is out_of_range.406 while parsing, not a
        // parse_error (found by tests/fuzz/fuzz_data_sources).
        std::string detail = e.what();
        if (const auto close = detail.find("] "); close != std::string::npos)
            detail.erase(0, close + 2);
        throw input_error(where, fmt::format("not valid JSON: {}", detail));
    }
}

nlohmann::json read_json_file(const std::string& path) {
    require_input_file(path);
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw input_error(path, "cannot open");
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad())
        throw input_error(path, "cannot read");
    return parse_json(text.str(), path);
}

std::optional<nlohmann::json> preset_or_json_file(const std::string& name_or_path,
                                                  std::string_view what,
                                                  const std::vector<std::string>& presets) {
    if (std::find(presets.begin(), presets.end(), name_or_path) != presets.end())
        return std::nullopt;
    std::error_code ec;
    if (!std::filesystem::exists(name_or_path, ec))
        throw input_error(fmt::format("unknown {} \"{}\" (presets: {}; or a path to a JSON file)",
                                      what, name_or_path, fmt::join(presets, ", ")));
    return read_json_file(name_or_path);
}

} // namespace wlb
