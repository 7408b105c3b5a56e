// Loading a JSON trace file for simdjson: plain or gzip (told by its magic bytes, not its name),
// into a string with the padding simdjson needs, and closing a text that ends early so that the
// events before the cut can still be read.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace wlb::profiler {

/// Bytes of zeroed slack kept after the text (simdjson reads up to 64 bytes past the end).
inline constexpr std::size_t json_padding = 64;

/// A growable byte buffer that leaves alone what it is about to overwrite (std::string::resize
/// zero-fills: that memset was 15% of reading a Kineto file) and keeps json_padding zeroed bytes
/// after its end, as simdjson needs.
class text_buffer {
public:
    [[nodiscard]] char* data() noexcept { return m_data.get(); }
    [[nodiscard]] const char* data() const noexcept { return m_data.get(); }
    [[nodiscard]] std::size_t size() const noexcept { return m_size; }
    /// Bytes readable from data(): size() + json_padding at least.
    [[nodiscard]] std::size_t capacity() const noexcept { return m_alloc; }
    [[nodiscard]] std::string_view view() const noexcept { return {m_data.get(), m_size}; }
    /// Keeps the first min(size(), n) bytes; bytes after them up to n are unspecified until
    /// written. The padding after n is zeroed.
    void resize(std::size_t n);
    void append(std::string_view s);
    /// Size 0, capacity kept: the next resize copies nothing over.
    void clear() noexcept { m_size = 0; }

private:
    std::unique_ptr<char[]> m_data;
    std::size_t m_size = 0;
    std::size_t m_alloc = 0;
};

struct loaded_text {
    text_buffer text;            ///< the (decompressed) content, padded
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
std::optional<json_cut> find_json_cut(std::string_view text);

} // namespace wlb::profiler
