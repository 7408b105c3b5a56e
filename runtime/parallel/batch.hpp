// Batch and shard types (design.md section 4, "Batch"): what one training step holds.
//
//   global_batch (one step) -> DP replicas -> micro-batches -> documents
//   sharded micro-batch     -> per-CP-rank chunk lists, each chunk a token range of a document
//
// All lengths are tokens. A document keeps the step the dataloader drew it in, so the delay a
// packing policy imposes (step packed - step drawn) is measurable.
#pragma once

#include <cstdint>
#include <vector>

namespace wlb::runtime {

struct document {
    std::int64_t id = 0;         ///< position in the dataloader's stream (unique in a run)
    std::int64_t tokens = 0;     ///< length in tokens (after any truncation or split)
    std::int64_t drawn_step = 0; ///< the step in which the dataloader drew it
};

struct micro_batch {
    std::vector<document> docs;
    [[nodiscard]] std::int64_t tokens() const noexcept {
        std::int64_t n = 0;
        for (const auto& d : docs)
            n += d.tokens;
        return n;
    }
};

struct replica_batch {
    std::vector<micro_batch> micro_batches;
};

struct global_batch {
    std::int64_t step = 0;
    std::vector<replica_batch> replicas; ///< one per DP replica
};

/// A contiguous token range of one document held by one CP rank. The chunk's queries are the
/// tokens [q_offset, q_offset + q_tokens) of the document; under the causal document mask they
/// attend every key of the document up to themselves, i.e. keys [0, q_offset + q_tokens).
struct chunk {
    std::int64_t doc_id = 0;
    std::int64_t q_offset = 0; ///< earlier tokens of the same document (attended, not held)
    std::int64_t q_tokens = 0;
    [[nodiscard]] std::int64_t kv_tokens() const noexcept { return q_offset + q_tokens; }
};

/// The chunks one CP rank holds for one micro-batch, in the order it lays them out.
struct cp_shard {
    std::vector<chunk> chunks;
};

struct sharded_micro_batch {
    std::vector<cp_shard> ranks; ///< index = CP rank
};

/// One step's batch after packing and CP sharding: replicas -> micro-batches -> CP shards.
struct sharded_step {
    std::int64_t step = 0;
    std::vector<std::vector<sharded_micro_batch>> replicas; ///< [dp][micro-batch]
};

/// Exact causal (query, key) pairs of a chunk of n queries with p earlier tokens of its
/// document: n*p + n*(n+1)/2. Exact in 64-bit for any n, p up to 2^31.
[[nodiscard]] constexpr std::int64_t causal_pairs(std::int64_t n, std::int64_t p) noexcept {
    return n * p + n * (n + 1) / 2;
}

/// Causal pairs of a whole document of d tokens (one chunk, no earlier tokens).
[[nodiscard]] constexpr std::int64_t causal_pairs(std::int64_t d) noexcept {
    return causal_pairs(d, 0);
}

} // namespace wlb::runtime
