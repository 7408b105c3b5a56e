// Loading a JSON trace file for simdjson: plain or gzip (told by its magic bytes, not its name),
// into a string with the padding simdjson needs, and closing a text that ends early so that the
// events before the cut can still be read.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace wlb::profiler {

/// Bytes of zeroed slack kept after the text (simdjson reads up to 64 bytes past the end).
inline constexpr std::size_t json_padding = 64;

struct loaded_text {
    std::string text;            ///< the (decompressed) content; capacity >= size + json_padding
    std::int64_t file_bytes = 0; ///< size on disk
    bool gzip = false;
    /// Set when the file could only be read in part (a gzip stream that ends early): what was
    /// read is in `text`.
    std::optional<std::string> problem;
};

/// Throws wlb::input_error naming the path when it cannot be opened. Reads into `into`, whose
/// text keeps its capacity: reading the ranks of a job one after the other through one buffer
/// touches (page-faults) its memory once, not once per file.
void load_text_file(const std::string& path, loaded_text& into);

/// Reads at most `max_bytes` of the (decompressed) beginning of a file; "" when unreadable.
std::string read_head(const std::string& path, std::size_t max_bytes);

/// For a JSON text cut short: the byte offset just past the last complete element of an array
/// (at any depth >= 1), and the closers that complete every container still open there ("]}").
/// nullopt when there is no such element.
struct json_cut {
    std::size_t keep_bytes = 0;
    std::string closers;
};
std::optional<json_cut> find_json_cut(const std::string& text);

} // namespace wlb::profiler
