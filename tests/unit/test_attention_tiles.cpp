// The tiling of the CUDA attention kernels (kernels/attention_tiles.hpp), without a GPU: forward
// tiles cover every query row once and read only keys of their segment; backward tiles cover every
// key row once and their query range holds every query that sees one of their keys; both lists
// are heaviest first; the pair count is exact. Then the kernels' loop structure (forward: key
// blocks of 64 with the per-warp skip and the base-2 online softmax; backward: query blocks from
// the tile's first query) replayed on the host in double, tile by tile, equals the CPU kernels:
// the blocking and masking arithmetic the device code uses is the one checked here.
#include "base/error.hpp"
#include "kernels/attention_tiles.hpp"
#include "kernels/ops.hpp"

#include <algorithm>
#include <cmath>
#include <gtest/gtest.h>
#include <random>
#include <vector>

namespace k = wlb::kernels;
using ix = k::index;

namespace {

struct chunk_set {
    std::vector<ix> cu_q{0}, cu_k{0}, offsets;
    void add(ix q_len, ix q_offset, ix k_len) {
        cu_q.push_back(cu_q.back() + q_len);
        cu_k.push_back(cu_k.back() + k_len);
        offsets.push_back(q_offset);
    }
    [[nodiscard]] k::attention_chunks view(ix heads = 1, ix head_dim = 4) const {
        k::attention_chunks c;
        c.cu_seqlens_q = cu_q;
        c.cu_seqlens_k = cu_k;
        c.q_offsets = offsets;
        c.heads = heads;
        c.head_dim = head_dim;
        c.scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
        return c;
    }
};

chunk_set mixed_chunks() {
    chunk_set s;
    for (ix len : {1, 127, 128, 129, 300, 64, 65})
        s.add(len, 0, len);
    s.add(100, 30, 300); // over-long key segment
    s.add(0, 0, 70);     // no queries
    s.add(200, 1000, 1200);
    s.add(1, 500, 501);
    return s;
}

TEST(AttentionTiles, ForwardTilesCoverEveryQueryOnceWithinTheSegment) {
    const auto set = mixed_chunks();
    const auto t = k::make_attention_tiling(set.view());
    std::vector<int> seen(static_cast<std::size_t>(set.cu_q.back()), 0);
    for (const auto& tile : t.fwd) {
        const auto& c = t.chunks[static_cast<std::size_t>(tile.chunk)];
        EXPECT_EQ(tile.begin % t.fwd_rows, 0);
        const ix rows = k::fwd_tile_rows(c, tile.begin, t.fwd_rows);
        ASSERT_GT(rows, 0);
        ASSERT_LE(rows, t.fwd_rows);
        EXPECT_LE(k::fwd_tile_keys(c, tile.begin, t.fwd_rows), c.k_len);
        for (ix r = 0; r < rows; ++r)
            ++seen[static_cast<std::size_t>(c.q_start + tile.begin + r)];
    }
    for (int s : seen)
        EXPECT_EQ(s, 1);
}

TEST(AttentionTiles, BackwardTilesCoverEveryKeyOnceAndEveryQueryThatSeesIt) {
    const auto set = mixed_chunks();
    const auto t = k::make_attention_tiling(set.view());
    std::vector<int> seen(static_cast<std::size_t>(set.cu_k.back()), 0);
    for (const auto& tile : t.bwd) {
        const auto& c = t.chunks[static_cast<std::size_t>(tile.chunk)];
        const ix keys = k::bwd_tile_keys(c, tile.begin, t.bwd_keys);
        ASSERT_GT(keys, 0);
        const ix first = k::bwd_tile_first_query(c, tile.begin);
        for (ix j = tile.begin; j < tile.begin + keys; ++j) {
            ++seen[static_cast<std::size_t>(c.k_start + j)];
            for (ix i = 0; i < c.q_len; ++i) {
                if (j <= c.q_offset + i) { // query i sees key j
                    EXPECT_GE(i, first) << "chunk " << tile.chunk << " key " << j;
                }
            }
        }
        if (first < c.q_len) { // its first query sees the tile's first key
            EXPECT_LE(tile.begin, c.q_offset + first);
        }
    }
    for (int s : seen)
        EXPECT_EQ(s, 1);
}

TEST(AttentionTiles, HeaviestFirstAndExactPairs) {
    const auto set = mixed_chunks();
    const auto t = k::make_attention_tiling(set.view());
    ix prev = -1;
    for (const auto& tile : t.fwd) {
        const auto& c = t.chunks[static_cast<std::size_t>(tile.chunk)];
        const ix w = (k::fwd_tile_keys(c, tile.begin, t.fwd_rows) + t.bwd_keys - 1) / t.bwd_keys;
        if (prev >= 0) {
            EXPECT_LE(w, prev);
        }
        prev = w;
    }
    ix pairs = 0;
    for (std::size_t c = 0; c < set.offsets.size(); ++c)
        for (ix i = 0; i < set.cu_q[c + 1] - set.cu_q[c]; ++i)
            pairs += set.offsets[c] + i + 1;
    EXPECT_EQ(t.causal_pairs, pairs);
    EXPECT_EQ(t.total_q, set.cu_q.back());
    EXPECT_EQ(t.total_k, set.cu_k.back());
}

TEST(AttentionTiles, ShortKeySegmentIsRefused) {
    chunk_set s;
    s.add(10, 5, 14); // needs 15 keys
    EXPECT_THROW((void)k::make_attention_tiling(s.view()), wlb::internal_error);
}

// ---- the kernels' loops replayed on the host ---------------------------------------------------

std::vector<double> random_values(std::size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<double> dist(0.0, 1.0);
    std::vector<double> v(n);
    for (auto& x : v)
        x = dist(rng);
    return v;
}

// kernels/attention_fwd.cu, one head: per tile, warps of 16 rows, key blocks of 64 up to the
// tile's last query, skipped by a warp whose last row precedes the block, masked per element,
// online softmax in base 2.
void replay_forward(const k::attention_tiling& t, ix d, double scale, const std::vector<double>& q,
                    const std::vector<double>& kk, const std::vector<double>& v,
                    std::vector<double>& out, std::vector<double>& lse) {
    const double log2e = 1.0 / std::log(2.0);
    for (const auto& tile : t.fwd) {
        const auto& c = t.chunks[static_cast<std::size_t>(tile.chunk)];
        const ix rows = k::fwd_tile_rows(c, tile.begin, t.fwd_rows);
        const ix pos0 = c.q_offset + tile.begin;
        const ix keys = pos0 + rows;
        for (ix r = 0; r < 128; ++r) { // every row of the tile, padding rows included
            const ix warp_last = pos0 + (r / 16) * 16 + 15;
            const ix pos = pos0 + r;
            double m = -INFINITY, l = 0;
            std::vector<double> o(static_cast<std::size_t>(d), 0.0);
            for (ix j0 = 0; j0 < keys; j0 += 64) {
                if (j0 > warp_last)
                    continue;
                double mx = m;
                std::vector<double> s(64);
                for (ix jj = 0; jj < 64; ++jj) {
                    const ix j = j0 + jj;
                    double dot = 0;
                    if (r < rows && j < keys) // zero-filled rows beyond the tile or the keys
                        for (ix x = 0; x < d; ++x)
                            dot +=
                                q[static_cast<std::size_t>((c.q_start + tile.begin + r) * d + x)] *
                                kk[static_cast<std::size_t>((c.k_start + j) * d + x)];
                    s[static_cast<std::size_t>(jj)] = j <= pos ? dot * scale * log2e : -INFINITY;
                    mx = std::max(mx, s[static_cast<std::size_t>(jj)]);
                }
                ASSERT_TRUE(std::isfinite(mx)) << "row max must be finite after key 0";
                const double alpha = std::exp2(m - mx);
                m = mx;
                l *= alpha;
                for (auto& x : o)
                    x *= alpha;
                for (ix jj = 0; jj < 64; ++jj) {
                    const double p = std::exp2(s[static_cast<std::size_t>(jj)] - m);
                    l += p;
                    const ix j = j0 + jj;
                    if (j < keys)
                        for (ix x = 0; x < d; ++x)
                            o[static_cast<std::size_t>(x)] +=
                                p * v[static_cast<std::size_t>((c.k_start + j) * d + x)];
                }
            }
            if (r >= rows)
                continue;
            const ix row = c.q_start + tile.begin + r;
            for (ix x = 0; x < d; ++x)
                out[static_cast<std::size_t>(row * d + x)] = o[static_cast<std::size_t>(x)] / l;
            lse[static_cast<std::size_t>(row)] = (m + std::log2(l)) * std::log(2.0);
        }
    }
}

// kernels/attention_bwd.cu, one head: per key tile, query blocks of 64 from the tile's first
// query, P^T masked by (query inside the chunk) and (key <= position), dQ accumulated.
void replay_backward(const k::attention_tiling& t, ix d, double scale, const std::vector<double>& q,
                     const std::vector<double>& kk, const std::vector<double>& v,
                     const std::vector<double>& out, const std::vector<double>& dout,
                     const std::vector<double>& lse, std::vector<double>& dq,
                     std::vector<double>& dk, std::vector<double>& dv) {
    std::fill(dq.begin(), dq.end(), 0.0);
    auto at = [d](ix row, ix x) {
        return static_cast<std::size_t>(row * d + x);
    };
    for (const auto& tile : t.bwd) {
        const auto& c = t.chunks[static_cast<std::size_t>(tile.chunk)];
        const ix block_keys = k::bwd_tile_keys(c, tile.begin, t.bwd_keys);
        for (ix kr = 0; kr < block_keys; ++kr) {
            const ix key = tile.begin + kr;
            const ix krow = c.k_start + key;
            std::vector<double> gk(static_cast<std::size_t>(d), 0.0), gv(gk.size(), 0.0);
            for (ix i0 = k::bwd_tile_first_query(c, tile.begin); i0 < c.q_len; i0 += 64) {
                const ix nq = std::min<ix>(64, c.q_len - i0);
                for (ix qc = 0; qc < 64; ++qc) {
                    if (!(qc < nq && key <= c.q_offset + i0 + qc))
                        continue;
                    const ix row = c.q_start + i0 + qc;
                    double s = 0, dp = 0, delta = 0;
                    for (ix x = 0; x < d; ++x) {
                        s += kk[at(krow, x)] * q[at(row, x)];
                        dp += v[at(krow, x)] * dout[at(row, x)];
                        delta += dout[at(row, x)] * out[at(row, x)];
                    }
                    const double p = std::exp(s * scale - lse[static_cast<std::size_t>(row)]);
                    const double ds = p * (dp - delta);
                    for (ix x = 0; x < d; ++x) {
                        gv[static_cast<std::size_t>(x)] += p * dout[at(row, x)];
                        gk[static_cast<std::size_t>(x)] += ds * q[at(row, x)];
                        dq[at(row, x)] += scale * ds * kk[at(krow, x)];
                    }
                }
            }
            for (ix x = 0; x < d; ++x) {
                dk[at(krow, x)] = scale * gk[static_cast<std::size_t>(x)];
                dv[at(krow, x)] = gv[static_cast<std::size_t>(x)];
            }
        }
    }
}

TEST(AttentionTiles, KernelLoopsReplayedOnTheHostEqualTheCpuKernels) {
    const auto set = mixed_chunks();
    const ix d = 8;
    const auto chunks = set.view(1, d);
    const auto t = k::make_attention_tiling(chunks);
    const auto nq = static_cast<std::size_t>(t.total_q * d);
    const auto nk = static_cast<std::size_t>(t.total_k * d);
    const auto q = random_values(nq, 1), kk = random_values(nk, 2), v = random_values(nk, 3);
    const auto dout = random_values(nq, 4);

    std::vector<double> out(nq), lse(static_cast<std::size_t>(t.total_q));
    replay_forward(t, d, chunks.scale, q, kk, v, out, lse);
    std::vector<double> out_ref(nq), lse_ref(lse.size());
    k::attention_forward<double>(chunks, q.data(), d, kk.data(), d, v.data(), d, out_ref.data(), d,
                                 lse_ref.data());
    for (std::size_t i = 0; i < nq; ++i)
        ASSERT_NEAR(out[i], out_ref[i], 1e-10) << "out " << i;
    for (std::size_t i = 0; i < lse.size(); ++i)
        ASSERT_NEAR(lse[i], lse_ref[i], 1e-10) << "lse " << i;

    std::vector<double> dq(nq), dk(nk, -1.0), dv(nk, -1.0);
    replay_backward(t, d, chunks.scale, q, kk, v, out_ref, dout, lse_ref, dq, dk, dv);
    std::vector<double> dq_ref(nq), dk_ref(nk), dv_ref(nk);
    k::attention_backward<double>(chunks, q.data(), d, kk.data(), d, v.data(), d, out_ref.data(), d,
                                  dout.data(), d, lse_ref.data(), dq_ref.data(), d, dk_ref.data(),
                                  d, dv_ref.data(), d);
    for (std::size_t i = 0; i < nq; ++i)
        ASSERT_NEAR(dq[i], dq_ref[i], 1e-10) << "dq " << i;
    for (std::size_t i = 0; i < nk; ++i) {
        ASSERT_NEAR(dk[i], dk_ref[i], 1e-10) << "dk " << i;
        ASSERT_NEAR(dv[i], dv_ref[i], 1e-10) << "dv " << i;
    }
}

} // namespace
