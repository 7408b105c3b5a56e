// JSON documents read from files (models, hardware, tuned configs, recorded batches, trace
// manifests): one reader, so that every file names itself and the byte where it went wrong in the
// same words, and a preset name and a file path are told apart in one way.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wlb {

/// Why `text` cannot be read as text (a UTF-8 byte order mark, gzip data, a NUL byte), in words
/// for an error message; empty when it can. The readers of text formats (JSON, JSON Lines, CSV,
/// plain lengths, plans) say this instead of the raw byte they stopped at.
std::string not_text_because(std::string_view text);

/// `text` parsed as one JSON document. Throws wlb::input_error "WHERE: not valid JSON at byte N:
/// ..." naming what the bytes look like when they cannot be JSON at all (empty, a UTF-8 byte
/// order mark, a NUL byte, gzip data) or that the document ends early ("truncated").
nlohmann::json parse_json(std::string_view text, std::string_view where);

/// The file at `path` read whole and parsed with parse_json. Throws wlb::input_error naming the
/// file when it cannot be opened or read.
nlohmann::json read_json_file(const std::string& path);

/// `name_or_path` is one of `presets` (returns std::nullopt: take the preset) or a JSON file
/// (returns its document). Anything else is wlb::input_error "unknown WHAT "x" (presets: a, b;
/// or a path to a JSON file)".
std::optional<nlohmann::json> preset_or_json_file(const std::string& name_or_path,
                                                  std::string_view what,
                                                  const std::vector<std::string>& presets);

} // namespace wlb
