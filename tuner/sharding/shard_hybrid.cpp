#include "tuner/sharding/shard_hybrid.hpp"

#include "base/error.hpp"
#include "tuner/cost/cost_model.hpp"
#include "tuner/sharding/shard_metrics.hpp"
#include "tuner/sharding/shard_per_doc.hpp"
#include "tuner/sharding/shard_per_seq.hpp"

#include <algorithm>
#include <limits>
#include <vector>

namespace wlb::tuner {

runtime::sharded_micro_batch shard_hybrid(const runtime::micro_batch& mb,
                                          std::int64_t threshold_tokens, const cost_model& cost,
                                          double max_token_imbalance) {
    const int cp = cost.layout().cp();
    runtime::sharded_micro_batch out;
    out.ranks.resize(static_cast<std::size_t>(cp));

    std::vector<const runtime::document*> whole;
    int cursor = 0;
    for (const auto& d : mb.docs) {
        if (d.tokens >= threshold_tokens)
            shard_document_per_doc(d, cursor, out);
        else if (d.tokens > 0)
            whole.push_back(&d);
    }

    std::vector<double> attention(out.ranks.size(), 0.0);
    std::vector<std::int64_t> tokens(out.ranks.size(), 0);
    for (std::size_t r = 0; r < out.ranks.size(); ++r) {
        for (const auto& c : out.ranks[r].chunks) {
            attention[r] += chunk_attention_seconds(cost, c.q_tokens, c.q_offset);
            tokens[r] += c.q_tokens;
        }
    }

    const std::int64_t total = mb.tokens();
    const std::int64_t cap =
        std::max((total + cp - 1) / cp,
                 static_cast<std::int64_t>(static_cast<double>(total) / cp * max_token_imbalance));

    // Longest first (stable: equal lengths keep the packed order).
    std::stable_sort(whole.begin(), whole.end(),
                     [](const auto* a, const auto* b) { return a->tokens > b->tokens; });
    for (const auto* d : whole) {
        const double doc_attention = chunk_attention_seconds(cost, d->tokens, 0);
        // Fewest tokens: where the document goes if no rank can take it within the cap.
        std::size_t best = static_cast<std::size_t>(std::min_element(tokens.begin(), tokens.end()) -
                                                    tokens.begin());
        double best_seconds = std::numeric_limits<double>::infinity();
        for (std::size_t r = 0; r < out.ranks.size(); ++r) {
            if (tokens[r] + d->tokens > cap)
                continue;
            const double seconds =
                attention[r] + doc_attention + rank_linear_seconds(cost, tokens[r] + d->tokens);
            if (seconds < best_seconds || (seconds == best_seconds && tokens[r] < tokens[best])) {
                best = r;
                best_seconds = seconds;
            }
        }
        out.ranks[best].chunks.push_back({d->id, 0, d->tokens});
        attention[best] += doc_attention;
        tokens[best] += d->tokens;
    }
    return out;
}

shard_decision hybrid_sharder::shard(const runtime::micro_batch& mb) const {
    const int cp = m_cost.layout().cp();
    shard_decision best;
    double best_seconds = std::numeric_limits<double>::infinity();
    auto consider = [&](std::optional<std::int64_t> threshold) {
        const std::int64_t t = threshold.value_or(std::numeric_limits<std::int64_t>::max());
        auto layout = shard_hybrid(mb, t, m_cost, m_max_token_imbalance);
        const auto m = measure_sharding(layout, m_cost);
        const double seconds = m.predicted_seconds;
        if (m.token_imbalance <= m_max_token_imbalance && seconds < best_seconds) {
            best_seconds = seconds;
            best = {std::move(layout), sharding_policy::hybrid, threshold, false};
        }
    };
    if (m_threshold_tokens) {
        consider(m_threshold_tokens);
    } else {
        // Candidates from the largest down, so that ties keep the larger threshold.
        std::vector<std::int64_t> lengths;
        for (const auto& d : mb.docs)
            lengths.push_back(d.tokens);
        std::sort(lengths.begin(), lengths.end(), std::greater<>());
        lengths.erase(std::unique(lengths.begin(), lengths.end()), lengths.end());
        consider(std::nullopt);
        for (std::int64_t t : lengths)
            consider(t);
    }

    auto per_seq = shard_per_seq(mb, cp);
    auto per_doc = shard_per_doc(mb, cp);
    const double seq_seconds = measure_sharding(per_seq, m_cost).predicted_seconds;
    const double doc_seconds = measure_sharding(per_doc, m_cost).predicted_seconds;
    if (best_seconds <= std::min(seq_seconds, doc_seconds))
        return best;
    if (doc_seconds < seq_seconds)
        return {std::move(per_doc), sharding_policy::per_doc, {}, true};
    return {std::move(per_seq), sharding_policy::per_seq, {}, true};
}

} // namespace wlb::tuner
