// Document lengths from text files: a JSON array, one length per line, JSONL records and a CSV
// column. Each file is read whole when opened and its lengths held in memory (8 bytes per
// document); a bad value is a wlb::input_error "FILE:LINE: what" (CSV: "FILE:LINE:COLUMN").
// Every length must be an integer in [1, max_document_tokens].
#pragma once

#include "tuner/data/document_source.hpp"

#include <memory>
#include <string>

namespace wlb::tuner {

/// A JSON array of integers: `[2792, 4238, 642]` (the reference file's format). Numbers written
/// with a fraction or exponent are accepted when integral (`4096.0`, `4e3`).
std::unique_ptr<document_source> open_json_lengths(const std::string& path);

/// One length per line; blank lines and `#` comments (whole-line or trailing) are skipped.
std::unique_ptr<document_source> open_text_lengths(const std::string& path);

/// JSON Lines: one object per non-blank line, the length under `key` ("length" by default).
/// A record without the key is an error naming the line.
std::unique_ptr<document_source> open_jsonl_lengths(const std::string& path,
                                                    const std::string& key = "length");

/// CSV with a header row; `column` is a header name, or a 0-based index when it is all digits
/// and no header cell has that name. Double-quoted fields ("a,b", "say ""hi""") are supported;
/// a quoted field cannot span lines.
std::unique_ptr<document_source> open_csv_lengths(const std::string& path,
                                                  const std::string& column = "length");

} // namespace wlb::tuner
