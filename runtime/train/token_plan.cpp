#include "runtime/train/token_plan.hpp"

#include "base/error.hpp"
#include "runtime/train/decoder.hpp"

#include <algorithm>
#include <unordered_map>

namespace wlb::runtime {

std::int64_t token_plan::labelled() const noexcept {
    return std::count_if(shard_labels.begin(), shard_labels.end(),
                         [](std::int32_t l) { return l >= 0; });
}

namespace {

std::int64_t padded_rows(std::int64_t tokens, int tp) {
    const std::int64_t rows = (tokens + tp - 1) / tp * tp;
    return std::max<std::int64_t>(rows, tp);
}

} // namespace

token_plan plan_tokens(const micro_batch& mb, const sharded_micro_batch& shard, int cp_rank, int tp,
                       int tp_rank, std::int64_t vocab) {
    const int cp = static_cast<int>(shard.ranks.size());
    WLB_EXPECTS(cp >= 1 && cp_rank >= 0 && cp_rank < cp && tp >= 1 && tp_rank >= 0 &&
                    tp_rank < tp && vocab >= 1,
                "token plan: CP rank {} of {}, TP rank {} of {}, vocab {}", cp_rank, cp, tp_rank,
                tp, vocab);
    struct doc_span {
        std::int64_t start = 0, tokens = 0;
    };
    std::unordered_map<std::int64_t, doc_span> docs;
    std::int64_t total = 0;
    for (const auto& d : mb.docs) {
        docs[d.id] = {total, d.tokens};
        total += d.tokens;
    }
    // Packed position -> all-gathered row (CP rank r's row i at r * block_rows + i).
    std::vector<std::int64_t> rank_tokens(static_cast<std::size_t>(cp), 0);
    for (int r = 0; r < cp; ++r)
        for (const auto& c : shard.ranks[static_cast<std::size_t>(r)].chunks)
            rank_tokens[static_cast<std::size_t>(r)] += c.q_tokens;
    token_plan p;
    p.cp = cp;
    p.tp = tp;
    for (int r = 0; r < cp; ++r)
        p.block_rows =
            std::max(p.block_rows, padded_rows(rank_tokens[static_cast<std::size_t>(r)], tp));
    std::vector<std::int64_t> gathered_row(static_cast<std::size_t>(total), -1);
    for (int r = 0; r < cp; ++r) {
        std::int64_t i = 0;
        for (const auto& c : shard.ranks[static_cast<std::size_t>(r)].chunks) {
            const doc_span& d = docs.at(c.doc_id);
            for (std::int64_t k = 0; k < c.q_tokens; ++k)
                gathered_row[static_cast<std::size_t>(d.start + c.q_offset + k)] =
                    r * p.block_rows + i++;
        }
    }

    // This rank: rows, ids, labels, positions, chunks, key segments.
    p.tokens = rank_tokens[static_cast<std::size_t>(cp_rank)];
    p.rows = padded_rows(p.tokens, tp);
    p.shard_rows = p.rows / tp;
    p.positions.assign(static_cast<std::size_t>(p.rows), 0);
    std::vector<std::int32_t> ids(static_cast<std::size_t>(p.rows), 0);
    std::vector<std::int32_t> labels(static_cast<std::size_t>(p.rows), -1);
    std::int64_t row = 0;
    p.kv_offsets.push_back(0);
    for (const auto& c : shard.ranks[static_cast<std::size_t>(cp_rank)].chunks) {
        if (c.q_tokens == 0)
            continue;
        const doc_span& d = docs.at(c.doc_id);
        for (std::int64_t k = 0; k < c.q_tokens; ++k, ++row) {
            const std::int64_t pos = c.q_offset + k;
            p.positions[static_cast<std::size_t>(row)] = pos;
            ids[static_cast<std::size_t>(row)] = document_token(c.doc_id, pos, vocab);
            labels[static_cast<std::size_t>(row)] =
                pos + 1 < d.tokens ? document_token(c.doc_id, pos + 1, vocab) : -1;
        }
        p.cu_q.push_back(p.cu_q.back() + c.q_tokens);
        p.cu_k.push_back(p.cu_k.back() + c.q_offset + c.q_tokens);
        p.q_offsets.push_back(c.q_offset);
        for (std::int64_t j = 0; j < c.q_offset + c.q_tokens; ++j) {
            const std::int64_t g = gathered_row[static_cast<std::size_t>(d.start + j)];
            WLB_EXPECTS(g >= 0, "token plan: token {} of document {} is held by no CP rank", j,
                        c.doc_id);
            p.kv_sources.push_back(g);
            p.kv_offsets.push_back(static_cast<std::int64_t>(p.kv_sources.size()));
        }
    }
    p.kv_rows = p.cu_k.back();
    const auto first = ids.begin() + tp_rank * p.shard_rows;
    p.shard_ids.assign(first, first + p.shard_rows);
    const auto first_label = labels.begin() + tp_rank * p.shard_rows;
    p.shard_labels.assign(first_label, first_label + p.shard_rows);

    // The transposed map: which segment rows read each all-gathered row.
    const std::int64_t gathered = cp * p.block_rows;
    std::vector<std::int64_t> count(static_cast<std::size_t>(gathered) + 1, 0);
    for (auto s : p.kv_sources)
        ++count[static_cast<std::size_t>(s) + 1];
    for (std::size_t t = 1; t < count.size(); ++t)
        count[t] += count[t - 1];
    p.dkv_offsets = count;
    p.dkv_sources.assign(p.kv_sources.size(), 0);
    for (std::size_t j = 0; j < p.kv_sources.size(); ++j)
        p.dkv_sources[static_cast<std::size_t>(
            count[static_cast<std::size_t>(p.kv_sources[j])]++)] = static_cast<std::int64_t>(j);

    p.kv_local = cp == 1 && p.kv_rows == p.tokens;
    for (std::size_t j = 0; p.kv_local && j < p.kv_sources.size(); ++j)
        p.kv_local = p.kv_sources[j] == static_cast<std::int64_t>(j);
    return p;
}

} // namespace wlb::runtime
