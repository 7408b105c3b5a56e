#include "tuner/data/megatron_idx_source.hpp"

#include "base/error.hpp"
#include "base/input_file.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace wlb::tuner {
namespace {

constexpr std::array<unsigned char, 9> idx_magic = {'M', 'M', 'I', 'D', 'I', 'D', 'X', 0, 0};
constexpr std::uint64_t version_offset = 9;
constexpr std::uint64_t dtype_offset = 17;
constexpr std::uint64_t sequences_offset = 18;
constexpr std::uint64_t boundaries_offset = 26;
constexpr std::uint64_t header_bytes = 34;

// Little-endian loads from possibly unaligned addresses (the arrays start at offset 34).
template <typename T>
T load_le(const unsigned char* p) noexcept {
    static_assert(std::endian::native == std::endian::little,
                  "the .idx reader assumes a little-endian host");
    T v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

[[noreturn]] void fail_at(const std::string& path, std::uint64_t offset, std::string_view what) {
    throw input_error(fmt::format("{}:offset {}", path, offset), what);
}

std::string printable(const unsigned char* p, std::size_t n) {
    std::string s;
    for (std::size_t i = 0; i < n; ++i)
        s += (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\') ? std::string(1, char(p[i]))
                                                           : fmt::format("\\x{:02x}", p[i]);
    return s;
}

// Reads the header from the first bytes of the file (`size` bytes available) and checks it
// against the file size.
idx_header parse_header(const std::string& path, const unsigned char* p, std::uint64_t size) {
    const auto need = [&](std::uint64_t offset, std::uint64_t bytes, std::string_view field) {
        if (size < offset + bytes)
            fail_at(path, size,
                    fmt::format("truncated header: the file ends at byte {} inside the {} field "
                                "(bytes {}..{}); a Megatron .idx header is {} bytes",
                                size, field, offset, offset + bytes - 1, header_bytes));
    };
    for (std::uint64_t i = 0; i < idx_magic.size(); ++i) {
        if (i >= size)
            need(0, idx_magic.size(), "magic");
        if (p[i] != idx_magic[i])
            fail_at(path, i,
                    fmt::format("wrong magic: expected \"MMIDIDX\\x00\\x00\" (a Megatron-LM "
                                "indexed dataset index), found \"{}\"",
                                printable(p, std::min<std::uint64_t>(size, idx_magic.size()))));
    }
    need(version_offset, 8, "version");
    if (auto version = load_le<std::uint64_t>(p + version_offset); version != 1)
        fail_at(path, version_offset, fmt::format("wrong version: expected 1, found {}", version));
    need(dtype_offset, 1, "dtype code");
    idx_header h;
    h.dtype_code = p[dtype_offset];
    if (h.dtype_code < 1 || h.dtype_code > 8)
        fail_at(path, dtype_offset,
                fmt::format("bad dtype code {}: expected 1..8 (uint8, int8, int16, int32, int64, "
                            "float64, float32, uint16)",
                            h.dtype_code));
    need(sequences_offset, 8, "sequence count");
    h.sequences = load_le<std::uint64_t>(p + sequences_offset);
    need(boundaries_offset, 8, "document count");
    h.boundaries = load_le<std::uint64_t>(p + boundaries_offset);
    if (h.boundaries == 0)
        fail_at(path, boundaries_offset,
                "document count field is 0: it stores documents + 1 (the boundary list starts "
                "with 0), so it is at least 1");
    // Sizes: every count is bounded by the file size before any multiplication can overflow.
    const std::uint64_t body = size - header_bytes;
    const bool fits = h.sequences <= body / 12 && h.boundaries <= body / 8;
    const std::uint64_t plain = fits ? header_bytes + 12 * h.sequences + 8 * h.boundaries : 0;
    if (fits && size == plain) {
        h.has_modes = false;
    } else if (fits && size == plain + h.sequences) {
        h.has_modes = true;
    } else {
        fail_at(path, sequences_offset,
                fmt::format("sizes inconsistent with the file size: the header says {} sequences "
                            "and {} document boundaries, which need {} bytes (or {} with the "
                            "modes array), but the file has {} bytes",
                            h.sequences, h.boundaries,
                            fits ? fmt::format("{}", plain) : std::string("more than 2^64"),
                            fits ? fmt::format("{}", plain + h.sequences) : std::string("more"),
                            size));
    }
    return h;
}

} // namespace

std::string_view idx_dtype_name(std::uint8_t code) noexcept {
    constexpr std::array<std::string_view, 9> names = {
        "invalid", "uint8", "int8", "int16", "int32", "int64", "float64", "float32", "uint16"};
    return code < names.size() ? names[code] : names[0];
}

megatron_idx_source::megatron_idx_source(std::string path) : m_path(std::move(path)) {
    require_input_file(m_path);
    int fd = ::open(m_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        throw input_error(m_path, fmt::format("cannot open: {}", std::strerror(errno)));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        int e = errno;
        ::close(fd);
        throw input_error(m_path, fmt::format("cannot stat: {}", std::strerror(e)));
    }
    m_bytes = static_cast<std::uint64_t>(st.st_size);
    if (m_bytes < header_bytes) {
        // Too small to map usefully: read what is there so the error names the right field.
        std::array<unsigned char, header_bytes> buf{};
        auto got = ::pread(fd, buf.data(), m_bytes, 0);
        ::close(fd);
        if (got != static_cast<ssize_t>(m_bytes))
            throw input_error(m_path, "cannot read the header");
        parse_header(m_path, buf.data(), m_bytes);
        throw internal_error("idx header shorter than 34 bytes was accepted"); // unreachable
    }
    void* map = ::mmap(nullptr, m_bytes, PROT_READ, MAP_PRIVATE, fd, 0);
    int map_errno = errno;
    ::close(fd);
    if (map == MAP_FAILED)
        throw input_error(m_path, fmt::format("cannot map: {}", std::strerror(map_errno)));
    m_data = static_cast<const unsigned char*>(map);
    ::madvise(map, m_bytes, MADV_SEQUENTIAL);
    try {
        m_header = parse_header(m_path, m_data, m_bytes);
        const std::uint64_t bounds = header_bytes + 12 * m_header.sequences;
        if (auto first = load_le<std::int64_t>(m_data + bounds); first != 0)
            fail_at(m_path, bounds,
                    fmt::format("bad document boundaries: the first must be 0, found {}", first));
        const std::uint64_t last_offset = bounds + 8 * (m_header.boundaries - 1);
        if (auto last = load_le<std::int64_t>(m_data + last_offset);
            last < 0 || static_cast<std::uint64_t>(last) != m_header.sequences)
            fail_at(m_path, last_offset,
                    fmt::format("bad document boundaries: the last must equal the sequence "
                                "count {}, found {}",
                                m_header.sequences, last));
    } catch (...) {
        ::munmap(map, m_bytes);
        m_data = nullptr;
        throw;
    }
}

megatron_idx_source::~megatron_idx_source() {
    if (m_data)
        ::munmap(const_cast<unsigned char*>(m_data), m_bytes);
}

std::optional<std::int64_t> megatron_idx_source::next() {
    if (m_next_document >= m_header.documents())
        return std::nullopt;
    const std::uint64_t bounds = header_bytes + 12 * m_header.sequences;
    const std::uint64_t end_offset = bounds + 8 * (m_next_document + 1);
    const auto end = load_le<std::int64_t>(m_data + end_offset);
    if (end < 0 || static_cast<std::uint64_t>(end) < m_previous_boundary)
        fail_at(m_path, end_offset,
                fmt::format("bad document boundaries: boundary {} is {}, less than the one "
                            "before it ({}); boundaries must not decrease",
                            m_next_document + 1, end, m_previous_boundary));
    if (static_cast<std::uint64_t>(end) > m_header.sequences)
        fail_at(m_path, end_offset,
                fmt::format("bad document boundaries: boundary {} is {}, beyond the sequence "
                            "count {}",
                            m_next_document + 1, end, m_header.sequences));
    std::int64_t tokens = 0;
    for (auto s = m_previous_boundary; s < static_cast<std::uint64_t>(end); ++s) {
        const std::uint64_t offset = header_bytes + 4 * s;
        const auto length = load_le<std::int32_t>(m_data + offset);
        if (length < 0)
            fail_at(m_path, offset, fmt::format("negative length {} of sequence {}", length, s));
        tokens += length;
    }
    if (tokens > max_document_tokens)
        fail_at(m_path, end_offset,
                fmt::format("document {} has {} tokens, more than the {} a document may have",
                            m_next_document, tokens, max_document_tokens));
    m_previous_boundary = static_cast<std::uint64_t>(end);
    ++m_next_document;
    return tokens;
}

std::optional<std::int64_t> megatron_idx_source::size_hint() const {
    return static_cast<std::int64_t>(m_header.documents());
}

std::string megatron_idx_source::describe() const {
    return "megatron-idx:" + m_path;
}

void megatron_idx_source::rewind() {
    m_next_document = 0;
    m_previous_boundary = 0;
}

} // namespace wlb::tuner
