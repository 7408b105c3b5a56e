// The document stream packers consume (design.md section 2): it numbers documents, applies the
// dataloader's order and the context-window policy, and counts what it changed.
//
// - Order: as stored, or shuffled with a seed. Shuffling loads every length of the source into
//   memory once (4 bytes per document, as uint32) and applies a Fisher-Yates permutation driven
//   by std::mt19937_64(seed) and uniform_below() (tuner/data/synthetic_source.hpp), so the order is
//   the same on every platform. This is what a training dataloader does with a map-style
//   dataset and a seeded sampler; a billion documents need 4 GB.
// - Context policy, for a document longer than the context window C:
//     truncate: keep its first C tokens; the rest are counted as dropped.
//     split:    cut it into ceil(d / C) pieces, C tokens each but the last; every piece is a
//               document of its own (its own id) and no token is dropped.
// - Empty documents (length 0, possible in a Megatron .idx) are skipped and counted.
// - Limits: stop after max_documents source documents, or before the first source document
//   once the emitted tokens have reached max_tokens (a document is never cut by a limit).
// - Ids are stream positions 0, 1, 2, ... of the emitted documents; rewind() replays exactly the
//   same documents with the same ids, so policies can be compared on identical input.
// Invariant, checked by tests: source_tokens = tokens + dropped_tokens.
#pragma once

#include "runtime/parallel/batch.hpp"
#include "tuner/data/document_source.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wlb::tuner {

enum class context_policy { truncate, split };

/// "truncate" or "split"; throws wlb::input_error otherwise.
context_policy parse_context_policy(std::string_view text);
std::string_view to_string(context_policy p) noexcept;

struct stream_options {
    std::int64_t context_tokens = 131072; ///< the context window C, > 0
    context_policy policy = context_policy::truncate;
    std::optional<std::uint64_t> shuffle_seed = std::nullopt; ///< nullopt: the stored order
    std::int64_t max_documents = 0;                           ///< source documents to read; 0 = all
    std::int64_t max_tokens = 0; ///< emitted tokens to reach; 0 = no limit
};

/// What the stream has done since construction or the last rewind().
struct stream_stats {
    std::int64_t source_documents = 0; ///< documents read from the source (empty ones included)
    std::int64_t source_tokens = 0;    ///< their tokens
    std::int64_t documents = 0;        ///< documents emitted (split pieces count one each)
    std::int64_t tokens = 0;           ///< tokens emitted
    std::int64_t empty_documents = 0;  ///< length-0 source documents skipped
    std::int64_t over_context_documents = 0; ///< source documents longer than the context
    std::int64_t truncated_documents = 0;
    std::int64_t dropped_tokens = 0; ///< cut off by truncate
    std::int64_t split_documents = 0;
    std::int64_t split_pieces = 0; ///< pieces the split documents became
};

/// One emitted document with where it came from.
struct stream_item {
    runtime::document doc;          ///< id = stream position, tokens after the policy
    std::int64_t source_index = 0;  ///< position of the source document in the dataloader order
    std::int64_t source_tokens = 0; ///< its length before the policy
    std::int64_t piece = 0;         ///< 0, or the piece number of a split document
};

class document_stream {
public:
    /// Throws wlb::input_error on bad options (context <= 0, negative limits) and, with a
    /// shuffle seed, on malformed source data (the source is read whole here).
    document_stream(std::unique_ptr<document_source> source, stream_options options);

    /// The next document, stamped with `drawn_step`, or nullopt at the end of the stream.
    std::optional<runtime::document> next(std::int64_t drawn_step);
    /// The same, with its source document's index and length.
    std::optional<stream_item> next_item(std::int64_t drawn_step);

    [[nodiscard]] const stream_stats& stats() const noexcept { return m_stats; }
    [[nodiscard]] const stream_options& options() const noexcept { return m_options; }
    /// Source documents when known up front (after max_documents), else nullopt.
    [[nodiscard]] std::optional<std::int64_t> size_hint() const;
    /// The source's description plus the order and policy.
    [[nodiscard]] std::string describe() const;
    /// Starts again from the first document; stats() restart from zero.
    void rewind();

private:
    std::optional<std::int64_t> next_source_length();

    std::unique_ptr<document_source> m_source;
    stream_options m_options;
    stream_stats m_stats;
    std::vector<std::uint32_t> m_shuffled; // all lengths in shuffled order (shuffle only)
    std::size_t m_shuffled_pos = 0;
    // the split document being emitted
    std::int64_t m_pending_tokens = 0;
    std::int64_t m_pending_piece = 0;
    std::int64_t m_pending_source_index = 0;
    std::int64_t m_pending_source_tokens = 0;
};

/// Opens `spec` (open_document_source) and wraps it in a stream.
document_stream open_document_stream(std::string_view spec, const stream_options& options);

} // namespace wlb::tuner
