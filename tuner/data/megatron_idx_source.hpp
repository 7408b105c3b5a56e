// Megatron-LM indexed dataset index (.idx) reader: document lengths only, the .bin is never
// opened. The file is memory-mapped and read front to back, so datasets with billions of
// documents stream in constant memory.
//
// Layout (little endian), as megatron/core/datasets/indexed_dataset.py (_IndexWriter) writes it:
//
//   offset  size   field
//   0       9      magic "MMIDIDX\0\0"
//   9       8      version, u64 = 1
//   17      1      dtype code, u8 (Megatron's DType: 1 uint8, 2 int8, 3 int16, 4 int32,
//                  5 int64, 6 float64, 7 float32, 8 uint16); the token type of the .bin
//   18      8      sequence count N, u64
//   26      8      document index count D, u64 = documents + 1
//   34      4N     sequence lengths, int32 [N]
//   34+4N   8N     sequence byte offsets into the .bin ("pointers"), int64 [N]; not read
//   34+12N  8D     document boundaries, int64 [D]: 0, then the index one past each document's
//                  last sequence (IndexedDatasetBuilder starts the list at [0] and appends
//                  len(sequence_lengths) at each end_document(); the writer stores len(list))
//   34+12N+8D N    optional sequence modes, int8 [N] (multimodal datasets)
//
// A document's length is the sum of its sequences' lengths. The file size must be exactly
// 34+12N+8D (no modes) or 34+13N+8D (with modes); anything else is an error. The pointers are
// neither read nor checked (they only matter to the .bin). Header fields, sizes and the first and
// last boundaries are checked when the file is opened; each boundary's order and each sequence
// length's sign are checked as the document is read. Every error is a wlb::input_error "PATH:offset
// N: what", naming the byte offset.
#pragma once

#include "tuner/data/document_source.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace wlb::tuner {

/// Header facts of an .idx file, checked against the file size.
struct idx_header {
    std::uint8_t dtype_code = 0;
    std::uint64_t sequences = 0;  ///< N
    std::uint64_t boundaries = 0; ///< D = documents + 1
    bool has_modes = false;
    [[nodiscard]] std::uint64_t documents() const noexcept { return boundaries - 1; }
};

/// Megatron's DType name for a code 1..8 ("int32"); "invalid" otherwise.
std::string_view idx_dtype_name(std::uint8_t code) noexcept;

class megatron_idx_source final : public document_source {
public:
    /// Opens and maps `path`; throws wlb::input_error (naming the offset) on a malformed header
    /// or inconsistent sizes, wlb::input_error naming the path when it cannot be opened.
    explicit megatron_idx_source(std::string path);
    ~megatron_idx_source() override;
    megatron_idx_source(const megatron_idx_source&) = delete;
    megatron_idx_source& operator=(const megatron_idx_source&) = delete;

    /// The next document's length in tokens (0 for an empty document).
    std::optional<std::int64_t> next() override;
    [[nodiscard]] std::optional<std::int64_t> size_hint() const override;
    /// "megatron-idx:PATH"
    [[nodiscard]] std::string describe() const override;
    void rewind() override;

    [[nodiscard]] const idx_header& header() const noexcept { return m_header; }
    [[nodiscard]] const std::string& path() const noexcept { return m_path; }

private:
    std::string m_path;
    idx_header m_header;
    const unsigned char* m_data = nullptr; // the mapping
    std::uint64_t m_bytes = 0;
    std::uint64_t m_next_document = 0;
    std::uint64_t m_previous_boundary = 0; // boundary [m_next_document]
};

} // namespace wlb::tuner
