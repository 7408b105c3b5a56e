#include "tuner/sharding/shard_per_doc.hpp"

#include "base/error.hpp"

#include <vector>

namespace wlb::tuner {

void shard_document_per_doc(const runtime::document& d, int& cursor,
                            runtime::sharded_micro_batch& out) {
    const auto cp = static_cast<std::int64_t>(out.ranks.size());
    WLB_EXPECTS(cp >= 1, "per-doc sharding needs at least one CP rank");
    WLB_EXPECTS(cursor >= 0 && cursor < cp, "cursor {} is not a CP rank of {}", cursor, cp);
    const std::int64_t q = d.tokens / (2 * cp);
    const std::int64_t r = d.tokens % (2 * cp);

    // extra[k]: chunk k's share of the remainder (0 or 1).
    std::vector<std::int64_t> extra(static_cast<std::size_t>(2 * cp), 0);
    for (std::int64_t j = 0; j < r; ++j) {
        const auto front = static_cast<std::size_t>(cursor);
        const auto back = static_cast<std::size_t>(2 * cp - 1 - cursor);
        (extra[front] == 0 ? extra[front] : extra[back]) = 1;
        cursor = static_cast<int>((cursor + 1) % cp);
    }

    // Chunk k starts after chunks 0..k-1; rank i appends its front chunk, then its back chunk.
    std::vector<runtime::chunk> chunks(static_cast<std::size_t>(2 * cp));
    std::int64_t offset = 0;
    for (std::size_t k = 0; k < chunks.size(); ++k) {
        chunks[k] = {d.id, offset, q + extra[k]};
        offset += q + extra[k];
    }
    for (std::int64_t i = 0; i < cp; ++i) {
        auto& shard = out.ranks[static_cast<std::size_t>(i)];
        append_chunk(shard, chunks[static_cast<std::size_t>(i)]);
        append_chunk(shard, chunks[static_cast<std::size_t>(2 * cp - 1 - i)]);
    }
}

runtime::sharded_micro_batch shard_per_doc(const runtime::micro_batch& mb, int cp) {
    WLB_EXPECTS(cp >= 1, "cp must be positive, got {}", cp);
    runtime::sharded_micro_batch out;
    out.ranks.resize(static_cast<std::size_t>(cp));
    int cursor = 0;
    for (const auto& d : mb.docs)
        shard_document_per_doc(d, cursor, out);
    return out;
}

} // namespace wlb::tuner
