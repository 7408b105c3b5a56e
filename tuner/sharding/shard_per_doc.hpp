// Per-document CP sharding (WLB-LLM section 5.1): every document is cut into 2*cp chunks and CP
// rank i holds chunks i and 2cp-1-i of every document, so every rank gets an equal share of
// every document's causal triangle.
//
// Remainder tokens: a document of d = 2cp*q + r tokens has chunks of q tokens plus its r < 2cp
// remainder tokens, dealt one at a time to CP ranks round-robin by one cursor that runs on
// across the documents of the micro-batch (starting at rank 0). A rank dealt one remainder token
// of a document lengthens its front chunk i by one; dealt a second (r > cp), its back chunk
// 2cp-1-i too. Documents shorter than 2*cp are all remainder: one-token chunks.
//
// Token balance: every rank holds sum_d 2*q_d tokens plus floor(R/cp) or ceil(R/cp) of the
// R = sum_d r_d remainder tokens, so rank token counts differ by at most one, and are equal
// exactly when cp divides the micro-batch's total T (T = 2cp*sum q_d + R). No padding either
// way: when 2*cp does not divide T, ranks still hold equal counts if cp divides T, else the
// first (R mod cp) ranks in cursor order hold one token more.
//
// Pair balance: without remainders every rank holds exactly the same causal pairs of every
// document (chunks i and 2cp-1-i together: q^2*(2cp-1) + q*(q+1)). The remainder tokens shift
// later chunks by at most r tokens; tests/unit/test_sharding.cpp derives the bound.
#pragma once

#include "runtime/parallel/batch.hpp"
#include "tuner/sharding/sharding.hpp"

namespace wlb::tuner {

/// Per-document sharding of `mb` over `cp` >= 1 ranks.
[[nodiscard]] runtime::sharded_micro_batch shard_per_doc(const runtime::micro_batch& mb, int cp);

/// Shards one document per document into `out` (which has cp ranks), dealing its remainder
/// tokens from `cursor` on (a CP rank, advanced and wrapped in place). shard_per_doc is this
/// over every document with one cursor from 0; the hybrid policy uses it for its long documents.
void shard_document_per_doc(const runtime::document& d, int& cursor,
                            runtime::sharded_micro_batch& out);

class per_doc_sharder final : public sharder {
public:
    explicit per_doc_sharder(int cp) : m_cp(cp) {}
    [[nodiscard]] sharding_spec spec() const override { return {sharding_policy::per_doc, {}}; }
    [[nodiscard]] shard_decision shard(const runtime::micro_batch& mb) const override {
        return {shard_per_doc(mb, m_cp), sharding_policy::per_doc, {}, false};
    }

private:
    int m_cp;
};

} // namespace wlb::tuner
