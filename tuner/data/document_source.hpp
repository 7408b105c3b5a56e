// Document streams: where document lengths come from (design.md section 2: "dataset ->
// document stream"). Every source yields lengths in the dataloader's order; the packers consume
// a document_stream, which numbers documents, applies the dataloader order (as stored or
// shuffled with a seed) and the context-window policy (truncate or split), and counts what it
// changed.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace wlb::tuner {

/// The longest document length any source accepts (2^31 - 1 tokens, so a length fits an int32
/// as Megatron stores it). Longer, zero or negative lengths in a lengths file are input errors;
/// a Megatron .idx may hold empty documents (length 0), which document_stream skips and counts.
inline constexpr std::int64_t max_document_tokens = 2147483647;

/// A source of document lengths in tokens, in stored order.
class document_source {
public:
    virtual ~document_source() = default;
    /// The next length, or nullopt at the end. Throws wlb::input_error naming the file and the
    /// place on malformed data.
    virtual std::optional<std::int64_t> next() = 0;
    /// Number of documents when known up front (an .idx header, an in-memory list), else nullopt.
    [[nodiscard]] virtual std::optional<std::int64_t> size_hint() const { return std::nullopt; }
    /// Human-readable description: "megatron-idx:/path/x.idx", "synthetic:lognormal?...".
    [[nodiscard]] virtual std::string describe() const = 0;
    /// Start again from the first document (sources are re-readable so that every policy can
    /// be compared on the same documents).
    virtual void rewind() = 0;
};

/// An in-memory list of lengths (tests, and the embedded default workload).
class vector_source final : public document_source {
public:
    explicit vector_source(std::vector<std::int64_t> lengths, std::string description = "memory")
        : m_lengths(std::move(lengths)), m_description(std::move(description)) {}
    std::optional<std::int64_t> next() override {
        if (m_pos >= m_lengths.size())
            return std::nullopt;
        return m_lengths[m_pos++];
    }
    [[nodiscard]] std::optional<std::int64_t> size_hint() const override {
        return static_cast<std::int64_t>(m_lengths.size());
    }
    [[nodiscard]] std::string describe() const override { return m_description; }
    void rewind() override { m_pos = 0; }

private:
    std::vector<std::int64_t> m_lengths;
    std::string m_description;
    std::size_t m_pos = 0;
};

} // namespace wlb::tuner
