// GPU tier: the CUDA varlen attention (kernels/cuda_ops.hpp) against the CPU kernels
// (kernels/ops.hpp) on the same bf16-rounded inputs, forward (out, lse) and backward (dq, dk, dv),
// norm-wise relative error under 1e-2: whole random documents including lengths 1, 127, 128 and
// 129 around the 128-row tile, CP chunks with earlier-token offsets, over-long key segments
// (masked keys get zero gradient), both variants, strided rows, a 100K-token document checked
// on sampled rows, and a micro-batch with more (query row, head) pairs than the backward's delta
// pass has warps in its capped grid. Skips with the reason without a CUDA device.
//
// ShortDocumentMatchesCpu and TailLengthsMatchCpu are small on purpose: scripts/gpu-check.sh runs
// them under compute-sanitizer (memcheck, racecheck), where everything runs 10-100x slower.
#include "base/error.hpp"
#include "kernels/cuda_ops.hpp"
#include "kernels/ops.hpp"
#include "support/gpu_test.hpp"

#include <algorithm>
#include <cmath>
#include <gtest/gtest.h>
#include <numeric>
#include <random>
#include <vector>

namespace k = wlb::kernels;
namespace kc = wlb::kernels::cuda;
using ix = k::index;
using wlb::test::bf16_tolerance;
using wlb::test::relative_error;

namespace {

/// An attention_chunks description with owned arrays.
struct chunk_set {
    std::vector<ix> cu_q{0}, cu_k{0}, offsets;
    void add(ix q_len, ix q_offset, ix k_len) {
        cu_q.push_back(cu_q.back() + q_len);
        cu_k.push_back(cu_k.back() + k_len);
        offsets.push_back(q_offset);
    }
    [[nodiscard]] k::attention_chunks view(ix heads, ix head_dim) const {
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

chunk_set whole_documents(const std::vector<ix>& lengths) {
    chunk_set s;
    for (ix len : lengths)
        s.add(len, 0, len);
    return s;
}

/// CP rank `rank` of `cp` under per-document sharding: each document in 2*cp pieces, the rank
/// holding pieces rank and 2cp-1-rank, each with its earlier tokens as the key prefix.
chunk_set cp_rank_chunks(const std::vector<ix>& lengths, int cp, int rank) {
    chunk_set s;
    const int pieces = 2 * cp;
    for (ix len : lengths) {
        std::vector<ix> starts(static_cast<std::size_t>(pieces) + 1, 0);
        for (int p = 0; p < pieces; ++p)
            starts[static_cast<std::size_t>(p) + 1] =
                starts[static_cast<std::size_t>(p)] + len / pieces + (p < len % pieces ? 1 : 0);
        for (int p : {rank, pieces - 1 - rank}) {
            const ix start = starts[static_cast<std::size_t>(p)];
            const ix n = starts[static_cast<std::size_t>(p) + 1] - start;
            s.add(n, start, start + n);
        }
    }
    return s;
}

std::vector<ix> random_lengths(unsigned seed, int count, ix max_len) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<ix> dist(1, max_len);
    std::vector<ix> out(static_cast<std::size_t>(count));
    for (auto& x : out)
        x = dist(rng);
    return out;
}

struct errors {
    double out = 0, lse = 0, dq = 0, dk = 0, dv = 0;
};

/// Runs the CUDA kernels and the CPU kernels on the same data and returns the relative errors.
/// Row strides are padded (width + pad) to exercise ld handling.
errors compare(const chunk_set& set, ix heads, ix d, kc::attention_variant variant, unsigned seed,
               ix pad = 8) {
    const auto chunks = set.view(heads, d);
    const ix total_q = set.cu_q.back();
    const ix total_k = set.cu_k.back();
    const ix width = heads * d;
    const ix ld = width + pad;
    const auto nq = static_cast<std::size_t>(total_q * ld);
    const auto nk = static_cast<std::size_t>(total_k * ld);
    auto q = wlb::test::random_bf16(nq, seed);
    auto kk = wlb::test::random_bf16(nk, seed + 1);
    auto v = wlb::test::random_bf16(nk, seed + 2);
    auto dout = wlb::test::random_bf16(nq, seed + 3);

    // CPU reference (float).
    std::vector<float> out_ref(nq, 0.f), lse_ref(static_cast<std::size_t>(total_q * heads));
    std::vector<float> dq_ref(nq, 0.f), dk_ref(nk, 0.f), dv_ref(nk, 0.f);
    k::attention_forward<float>(chunks, q.values.data(), ld, kk.values.data(), ld, v.values.data(),
                                ld, out_ref.data(), ld, lse_ref.data());
    k::attention_backward<float>(chunks, q.values.data(), ld, kk.values.data(), ld, v.values.data(),
                                 ld, out_ref.data(), ld, dout.values.data(), ld, lse_ref.data(),
                                 dq_ref.data(), ld, dk_ref.data(), ld, dv_ref.data(), ld);

    // Device.
    kc::device_array<k::bf16> dq_d(nq), dk_d(nk), dv_d(nk), out_d(nq);
    kc::device_array<k::bf16> q_d(q.bits), k_d(kk.bits), v_d(v.bits), do_d(dout.bits);
    kc::device_array<float> lse_d(lse_ref.size());
    // The padding columns are never written: start them equal to the reference's zeros.
    const std::vector<k::bf16> zeros(nq > nk ? nq : nk);
    out_d.upload({zeros.data(), nq});
    dq_d.upload({zeros.data(), nq});
    dk_d.upload({zeros.data(), nk});
    dv_d.upload({zeros.data(), nk});
    kc::attention_plan plan(chunks, variant);
    kc::attention_workspace ws;
    kc::attention_forward(plan, q_d.data(), ld, k_d.data(), ld, v_d.data(), ld, out_d.data(), ld,
                          lse_d.data());
    kc::attention_backward(plan, q_d.data(), ld, k_d.data(), ld, v_d.data(), ld, out_d.data(), ld,
                           do_d.data(), ld, lse_d.data(), dq_d.data(), ld, dk_d.data(), ld,
                           dv_d.data(), ld, ws);
    kc::synchronize_device();

    errors e;
    const auto rq = static_cast<std::size_t>(total_q);
    const auto rk = static_cast<std::size_t>(total_k);
    const auto w = static_cast<std::size_t>(width);
    const auto s = static_cast<std::size_t>(ld);
    e.out = relative_error(wlb::test::to_float(out_d.download()), out_ref, rq, w, s);
    e.lse = relative_error(lse_d.download(), lse_ref);
    e.dq = relative_error(wlb::test::to_float(dq_d.download()), dq_ref, rq, w, s);
    e.dk = relative_error(wlb::test::to_float(dk_d.download()), dk_ref, rk, w, s);
    e.dv = relative_error(wlb::test::to_float(dv_d.download()), dv_ref, rk, w, s);
    return e;
}

void expect_close(const errors& e, const char* what) {
    EXPECT_LT(e.out, bf16_tolerance) << what << ": out";
    EXPECT_LT(e.lse, bf16_tolerance) << what << ": lse";
    EXPECT_LT(e.dq, bf16_tolerance) << what << ": dq";
    EXPECT_LT(e.dk, bf16_tolerance) << what << ": dk";
    EXPECT_LT(e.dv, bf16_tolerance) << what << ": dv";
    std::printf("%s: relative error out %.2e lse %.2e dq %.2e dk %.2e dv %.2e\n", what, e.out,
                e.lse, e.dq, e.dk, e.dv);
}

std::vector<ix> tile_edge_documents(unsigned seed) {
    std::vector<ix> lengths = {1, 127, 128, 129, 2, 255, 256, 257, 64, 65, 1000};
    for (ix len : random_lengths(seed, 8, 700))
        lengths.push_back(len);
    return lengths;
}

TEST(CudaAttention, ShortDocumentMatchesCpu) {
    WLB_REQUIRE_GPU();
    const auto doc = whole_documents({200});
    expect_close(compare(doc, 1, 64, kc::attention_variant::mma, 50), "short document, mma, d=64");
    expect_close(compare(doc, 1, 64, kc::attention_variant::simt, 51),
                 "short document, simt, d=64");
}

TEST(CudaAttention, TailLengthsMatchCpu) {
    WLB_REQUIRE_GPU();
    // Tails of 1 and 127 rows past whole tiles, and 1 past a full 128-row tile.
    const auto docs = whole_documents({1, 127, 129});
    expect_close(compare(docs, 1, 64, kc::attention_variant::mma, 60), "tails 1/127/129, mma d=64");
    expect_close(compare(docs, 1, 128, kc::attention_variant::mma, 61),
                 "tails 1/127/129, mma d=128");
    expect_close(compare(docs, 1, 64, kc::attention_variant::simt, 62),
                 "tails 1/127/129, simt d=64");
}

TEST(CudaAttention, WholeDocumentsMatchCpuMma64) {
    WLB_REQUIRE_GPU();
    expect_close(
        compare(whole_documents(tile_edge_documents(11)), 2, 64, kc::attention_variant::mma, 100),
        "whole documents, mma, d=64");
}

TEST(CudaAttention, WholeDocumentsMatchCpuMma128) {
    WLB_REQUIRE_GPU();
    expect_close(
        compare(whole_documents(tile_edge_documents(12)), 2, 128, kc::attention_variant::mma, 200),
        "whole documents, mma, d=128");
}

TEST(CudaAttention, CpChunksWithEarlierTokensMatchCpu) {
    WLB_REQUIRE_GPU();
    const std::vector<ix> lengths = {1, 127, 128, 129, 1500, 3000, 700};
    for (int rank = 0; rank < 4; ++rank) {
        const auto set = cp_rank_chunks(lengths, 4, rank);
        expect_close(compare(set, 2, 128, kc::attention_variant::mma, 300 + rank),
                     "cp=4 per-doc chunks, mma, d=128");
        expect_close(compare(set, 1, 64, kc::attention_variant::mma, 400 + rank),
                     "cp=4 per-doc chunks, mma, d=64");
    }
}

TEST(CudaAttention, OverlongKeySegmentsAndEmptyChunks) {
    WLB_REQUIRE_GPU();
    chunk_set s;
    s.add(100, 30, 300); // keys 130 .. 299 are masked for every query: zero dk, dv
    s.add(0, 0, 70);     // no queries: its keys get zero gradient
    s.add(129, 0, 129);
    s.add(1, 500, 600);
    expect_close(compare(s, 2, 64, kc::attention_variant::mma, 500), "over-long segments, mma");
    expect_close(compare(s, 2, 64, kc::attention_variant::simt, 501), "over-long segments, simt");
}

TEST(CudaAttention, SimtVariantMatchesCpu) {
    WLB_REQUIRE_GPU();
    const auto docs = whole_documents({1, 127, 128, 129, 300});
    expect_close(compare(docs, 2, 32, kc::attention_variant::automatic, 600, 3),
                 "simt (automatic for d=32, odd stride)");
    expect_close(compare(docs, 1, 64, kc::attention_variant::simt, 601), "simt forced, d=64");
    expect_close(
        compare(cp_rank_chunks({900, 129}, 2, 1), 3, 48, kc::attention_variant::automatic, 602),
        "simt, cp chunks, d=48");
}

TEST(CudaAttention, VariantResolution) {
    WLB_REQUIRE_GPU();
    const auto set = whole_documents({10});
    const kc::device_array<k::bf16> buffer(256);
    const void* aligned[] = {buffer.data()};
    const void* misaligned[] = {buffer.data() + 1};
    const ix good[] = {64};
    const ix odd[] = {72 + 1};
    kc::attention_plan automatic(set.view(1, 64));
    EXPECT_EQ(automatic.resolve(aligned, good), kc::attention_variant::mma);
    EXPECT_EQ(automatic.resolve(misaligned, good), kc::attention_variant::simt);
    EXPECT_EQ(automatic.resolve(aligned, odd), kc::attention_variant::simt);
    kc::attention_plan forced(set.view(1, 32), kc::attention_variant::mma);
    EXPECT_THROW((void)forced.resolve(aligned, good), wlb::internal_error);
    kc::attention_plan too_wide(set.view(1, 512));
    EXPECT_THROW((void)too_wide.resolve(aligned, good), wlb::internal_error);
}

// A 100,000-token document (one head of 128): the device runs it whole; the CPU reference
// checks sampled query rows (forward and dq: each row is its own one-query chunk with all its
// earlier keys) and sampled key rows (dk, dv in double from the definition, with the device's
// lse and out, themselves checked on the sampled rows).
TEST(CudaAttention, HundredThousandTokenDocumentOnSampledRows) {
    WLB_REQUIRE_GPU();
    const ix n = 100000, d = 128;
    const double scale = 1.0 / std::sqrt(static_cast<double>(d));
    const auto nn = static_cast<std::size_t>(n * d);
    auto q = wlb::test::random_bf16(nn, 700);
    auto kk = wlb::test::random_bf16(nn, 701);
    auto v = wlb::test::random_bf16(nn, 702);
    auto dout = wlb::test::random_bf16(nn, 703);

    const auto set = whole_documents({n});
    kc::device_array<k::bf16> q_d(q.bits), k_d(kk.bits), v_d(v.bits), do_d(dout.bits);
    kc::device_array<k::bf16> out_d(nn), dq_d(nn), dk_d(nn), dv_d(nn);
    kc::device_array<float> lse_d(static_cast<std::size_t>(n));
    kc::attention_plan plan(set.view(1, d));
    kc::attention_workspace ws;
    kc::attention_forward(plan, q_d.data(), d, k_d.data(), d, v_d.data(), d, out_d.data(), d,
                          lse_d.data());
    kc::attention_backward(plan, q_d.data(), d, k_d.data(), d, v_d.data(), d, out_d.data(), d,
                           do_d.data(), d, lse_d.data(), dq_d.data(), d, dk_d.data(), d,
                           dv_d.data(), d, ws);
    const auto out = wlb::test::to_float(out_d.download());
    const auto lse = lse_d.download();
    const auto dq = wlb::test::to_float(dq_d.download());
    const auto dk = wlb::test::to_float(dk_d.download());
    const auto dv = wlb::test::to_float(dv_d.download());

    std::vector<ix> rows = {0, 1, 126, 127, 128, 129, 4095, 50000, n - 2, n - 1};
    for (ix r : random_lengths(704, 22, n - 1))
        rows.push_back(r);
    std::vector<float> got_o, want_o, got_l, want_l, got_dq, want_dq;
    for (ix i : rows) {
        chunk_set one;
        one.add(1, i, i + 1);
        const auto c = one.view(1, d);
        std::vector<float> o(static_cast<std::size_t>(d)), l(1), g(static_cast<std::size_t>(d));
        std::vector<float> gk(static_cast<std::size_t>((i + 1) * d)), gv(gk.size());
        const float* qi = q.values.data() + i * d;
        k::attention_forward<float>(c, qi, d, kk.values.data(), d, v.values.data(), d, o.data(), d,
                                    l.data());
        k::attention_backward<float>(c, qi, d, kk.values.data(), d, v.values.data(), d, o.data(), d,
                                     dout.values.data() + i * d, d, l.data(), g.data(), d,
                                     gk.data(), d, gv.data(), d);
        for (ix x = 0; x < d; ++x) {
            got_o.push_back(out[static_cast<std::size_t>(i * d + x)]);
            got_dq.push_back(dq[static_cast<std::size_t>(i * d + x)]);
        }
        want_o.insert(want_o.end(), o.begin(), o.end());
        want_dq.insert(want_dq.end(), g.begin(), g.end());
        got_l.push_back(lse[static_cast<std::size_t>(i)]);
        want_l.push_back(l[0]);
    }
    EXPECT_LT(relative_error(got_o, want_o), bf16_tolerance) << "out on sampled rows";
    EXPECT_LT(relative_error(got_l, want_l), bf16_tolerance) << "lse on sampled rows";
    EXPECT_LT(relative_error(got_dq, want_dq), bf16_tolerance) << "dq on sampled rows";

    // dk_j = scale * sum_{i >= j} p_ij (dO_i . v_j - delta_i) q_i,  dv_j = sum_{i >= j} p_ij dO_i
    std::vector<ix> keys = {0, 1, 63, 64, 65, 99999, 50000};
    for (ix j : random_lengths(705, 5, n - 1))
        keys.push_back(j);
    std::vector<float> got_dk, want_dk, got_dv, want_dv;
    for (ix j : keys) {
        std::vector<double> gk(static_cast<std::size_t>(d), 0.0), gv(gk.size(), 0.0);
        const float* kj = kk.values.data() + j * d;
        const float* vj = v.values.data() + j * d;
        for (ix i = j; i < n; ++i) {
            const float* qi = q.values.data() + i * d;
            const float* di = dout.values.data() + i * d;
            double s = 0, dp = 0, delta = 0;
            for (ix x = 0; x < d; ++x) {
                s += static_cast<double>(qi[x]) * kj[x];
                dp += static_cast<double>(di[x]) * vj[x];
                delta += static_cast<double>(di[x]) * out[static_cast<std::size_t>(i * d + x)];
            }
            const double p = std::exp(s * scale - lse[static_cast<std::size_t>(i)]);
            const double ds = p * (dp - delta);
            for (ix x = 0; x < d; ++x) {
                gk[static_cast<std::size_t>(x)] += scale * ds * qi[x];
                gv[static_cast<std::size_t>(x)] += p * di[x];
            }
        }
        for (ix x = 0; x < d; ++x) {
            got_dk.push_back(dk[static_cast<std::size_t>(j * d + x)]);
            got_dv.push_back(dv[static_cast<std::size_t>(j * d + x)]);
            want_dk.push_back(static_cast<float>(gk[static_cast<std::size_t>(x)]));
            want_dv.push_back(static_cast<float>(gv[static_cast<std::size_t>(x)]));
        }
    }
    EXPECT_LT(relative_error(got_dk, want_dk), bf16_tolerance) << "dk on sampled keys";
    EXPECT_LT(relative_error(got_dv, want_dv), bf16_tolerance) << "dv on sampled keys";
}

// The delta pass of the backward (rowsum(dO * O) per query row and head) runs one warp per
// (row, head) on a grid capped at 65535 x 16 blocks of 8 warps: 8,388,480 pairs. A micro-batch
// of 264K tokens x 32 heads has 8,650,752, so the rows past 262,140 are covered only by the
// grid-stride loop; their dq and dk depend on delta. Documents of 128 tokens keep the work
// small; the inputs are generated on the device, and the CPU reference checks whole documents
// on both sides of the cap (each document is independent of the others).
TEST(CudaAttention, BackwardPastTheDeltaGridCap) {
    WLB_REQUIRE_GPU();
    const ix doc = 128, heads = 32, d = 64, width = heads * d;
    const ix docs = 2112, total = docs * doc; // 270,336 tokens
    const ix cap_pairs = ix{65535} * 16 * (256 / 32);
    ASSERT_GT(total * heads, cap_pairs);
    const ix first_row_past_cap = cap_pairs / heads;
    std::vector<ix> lengths(static_cast<std::size_t>(docs), doc);
    const auto set = whole_documents(lengths);

    kc::stream s;
    const auto n = static_cast<std::size_t>(total * width);
    auto device = [&](std::uint64_t seed) {
        kc::device_array<k::bf16> a(n);
        if (seed != 0)
            kc::fill_random(a.data(), static_cast<ix>(n), seed, 1.0f, s.get());
        return a;
    };
    auto q = device(1), kk = device(2), v = device(3), dout = device(4);
    auto out = device(0), dq = device(0), dk = device(0), dv = device(0);
    kc::device_array<float> lse(static_cast<std::size_t>(total * heads));
    kc::attention_plan plan(set.view(heads, d), kc::attention_variant::mma, s.get());
    kc::attention_workspace ws;
    kc::attention_forward(plan, q.data(), width, kk.data(), width, v.data(), width, out.data(),
                          width, lse.data(), s.get());
    kc::attention_backward(plan, q.data(), width, kk.data(), width, v.data(), width, out.data(),
                           width, dout.data(), width, lse.data(), dq.data(), width, dk.data(),
                           width, dv.data(), width, ws, s.get());
    kc::synchronize(s.get());

    // Rows [row0, row0 + doc) of a device array, as floats.
    const auto rows = [&](const kc::device_array<k::bf16>& a, ix row0) {
        std::vector<k::bf16> host(static_cast<std::size_t>(doc * width));
        kc::copy_to_host(host.data(), a.data() + row0 * width, host.size() * sizeof(k::bf16),
                         s.get());
        return wlb::test::to_float(host);
    };
    const ix past = first_row_past_cap / doc + 1; // the first document wholly past the cap
    for (ix which : {ix{0}, docs / 2, past, docs - 1}) {
        const ix row0 = which * doc;
        const auto one = whole_documents({doc}).view(heads, d);
        const auto qh = rows(q, row0), kh = rows(kk, row0), vh = rows(v, row0);
        const auto doh = rows(dout, row0);
        std::vector<float> o(qh.size()), l(static_cast<std::size_t>(doc * heads));
        std::vector<float> gq(qh.size()), gk(qh.size()), gv(qh.size());
        k::attention_forward<float>(one, qh.data(), width, kh.data(), width, vh.data(), width,
                                    o.data(), width, l.data());
        k::attention_backward<float>(one, qh.data(), width, kh.data(), width, vh.data(), width,
                                     o.data(), width, doh.data(), width, l.data(), gq.data(), width,
                                     gk.data(), width, gv.data(), width);
        const std::string what = "document " + std::to_string(which) + " (rows from " +
                                 std::to_string(row0) + "; the cap ends at row " +
                                 std::to_string(first_row_past_cap) + ")";
        EXPECT_LT(relative_error(rows(out, row0), o), bf16_tolerance) << what << ": out";
        EXPECT_LT(relative_error(rows(dq, row0), gq), bf16_tolerance) << what << ": dq";
        EXPECT_LT(relative_error(rows(dk, row0), gk), bf16_tolerance) << what << ": dk";
        EXPECT_LT(relative_error(rows(dv, row0), gv), bf16_tolerance) << what << ": dv";
    }
}

} // namespace
