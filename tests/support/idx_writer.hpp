// Writes Megatron-LM indexed dataset index (.idx) files for tests and benchmarks, following the
// layout documented in tuner/data/megatron_idx_source.hpp (independently of the reader).
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace wlb::test {

/// Documents as lists of sequence lengths.
using idx_documents = std::vector<std::vector<std::int32_t>>;

inline std::size_t idx_dtype_bytes(std::uint8_t code) {
    constexpr std::size_t sizes[] = {0, 1, 1, 2, 4, 8, 8, 4, 2};
    return code < 9 ? sizes[code] : 1;
}

template <typename T>
void append_le(std::string& out, T v) {
    char bytes[sizeof(T)];
    std::memcpy(bytes, &v, sizeof(T)); // the test hosts are little endian, as the format
    out.append(bytes, sizeof(T));
}

/// The bytes of an .idx file holding `docs`, tokens of `dtype_code`, with or without modes.
inline std::string idx_bytes(const idx_documents& docs, std::uint8_t dtype_code = 4,
                             bool with_modes = false) {
    std::vector<std::int32_t> lengths;
    std::vector<std::int64_t> boundaries = {0};
    for (const auto& d : docs) {
        lengths.insert(lengths.end(), d.begin(), d.end());
        boundaries.push_back(static_cast<std::int64_t>(lengths.size()));
    }
    std::string out("MMIDIDX\0\0", 9);
    append_le<std::uint64_t>(out, 1);
    append_le<std::uint8_t>(out, dtype_code);
    append_le<std::uint64_t>(out, lengths.size());
    append_le<std::uint64_t>(out, boundaries.size());
    for (auto l : lengths)
        append_le<std::int32_t>(out, l);
    std::int64_t pointer = 0;
    for (auto l : lengths) {
        append_le<std::int64_t>(out, pointer);
        pointer +=
            static_cast<std::int64_t>(l) * static_cast<std::int64_t>(idx_dtype_bytes(dtype_code));
    }
    for (auto b : boundaries)
        append_le<std::int64_t>(out, b);
    if (with_modes)
        for (std::size_t i = 0; i < lengths.size(); ++i)
            append_le<std::int8_t>(out, static_cast<std::int8_t>(i % 3));
    return out;
}

inline void write_bytes(const std::string& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

} // namespace wlb::test
