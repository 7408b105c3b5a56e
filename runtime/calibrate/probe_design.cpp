#include "runtime/calibrate/probe_design.hpp"

#include "base/error.hpp"

#include <algorithm>
#include <fmt/format.h>

namespace wlb::runtime {
namespace {

/// Whole documents of the given lengths, one chunk each.
probe_batch whole(std::string label, const std::vector<std::int64_t>& lengths) {
    probe_batch p;
    p.label = std::move(label);
    p.shard.ranks.resize(1);
    for (std::size_t i = 0; i < lengths.size(); ++i) {
        const auto id = static_cast<std::int64_t>(i);
        p.mb.docs.push_back({id, lengths[i], 0});
        p.shard.ranks[0].chunks.push_back({id, 0, lengths[i]});
    }
    return p;
}

} // namespace

probe_design cpu_probe_design(bool quick) {
    probe_design d;
    if (quick) {
        d.tokens = 512;
        d.min_document = 16;
        d.off_tile = 100;
        d.pieces = {64};
    }
    return d;
}

probe_design gpu_probe_design(bool quick) {
    probe_design d;
    d.tokens = quick ? 8192 : 32768;
    d.min_document = 128;
    d.off_tile = 1000;
    d.pieces = {128, 4096};
    return d;
}

std::vector<probe_batch> probe_batches(const probe_design& d) {
    WLB_EXPECTS(d.tokens >= 4 * d.min_document && d.min_document >= 1,
                "probe design: {} tokens, shortest document {}", d.tokens, d.min_document);
    std::vector<probe_batch> out;
    // Documents of one length each, factors of 4 apart, up to one document of `tokens`.
    std::vector<std::int64_t> lengths;
    for (std::int64_t n = d.min_document; n < d.tokens; n *= 4)
        lengths.push_back(n);
    lengths.push_back(d.tokens);
    for (const auto n : lengths)
        out.push_back(whole(fmt::format("documents of {} tokens", n),
                            std::vector<std::int64_t>(static_cast<std::size_t>(d.tokens / n), n)));
    // Off-tile lengths: as many as fit, the rest one shorter document.
    {
        std::vector<std::int64_t> l(static_cast<std::size_t>(d.tokens / d.off_tile), d.off_tile);
        if (const auto rest = d.tokens % d.off_tile; rest > 0)
            l.push_back(rest);
        out.push_back(whole(fmt::format("documents of {} tokens (off the tile)", d.off_tile), l));
    }
    // One document cut into pieces of q queries: piece k attends the k*q tokens before it.
    for (const auto q : d.pieces) {
        WLB_EXPECTS(q >= 1 && q < d.tokens && d.tokens % q == 0, "probe piece of {} in {}", q,
                    d.tokens);
        probe_batch p;
        p.label = fmt::format("one document in pieces of {} queries", q);
        p.mb.docs.push_back({0, d.tokens, 0});
        p.shard.ranks.resize(1);
        for (std::int64_t off = 0; off < d.tokens; off += q)
            p.shard.ranks[0].chunks.push_back({0, off, q});
        out.push_back(std::move(p));
    }
    // Mixes: one long document and short ones (2x and 1x the shortest probed length).
    for (const auto& [long_share, short_len] :
         {std::pair<std::int64_t, std::int64_t>{2, 2 * d.min_document},
          std::pair<std::int64_t, std::int64_t>{3, d.min_document}}) {
        const std::int64_t long_len = d.tokens * long_share / 4;
        std::vector<std::int64_t> l = {long_len};
        for (std::int64_t left = d.tokens - long_len; left > 0; left -= short_len)
            l.push_back(std::min(left, short_len));
        out.push_back(whole(fmt::format("one document of {} and {} of {} tokens", long_len,
                                        l.size() - 1, short_len),
                            l));
    }
    return out;
}

} // namespace wlb::runtime
