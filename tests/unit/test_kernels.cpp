// CPU kernels (kernels/ops.hpp): GEMM against a naive product; every backward against central
// finite differences in double; attention against a brute-force dense masked reference; chunked
// (CP-style) attention against whole-document attention, forward and backward.
#include "kernels/ops.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <gtest/gtest.h>
#include <random>
#include <vector>

namespace k = wlb::kernels;
using ix = k::index;

namespace {

std::vector<double> random_vector(std::size_t n, unsigned seed, double scale = 1.0) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> dist(0.0, scale);
    std::vector<double> v(n);
    for (auto& x : v)
        x = dist(rng);
    return v;
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
    double s = 0;
    for (std::size_t i = 0; i < a.size(); ++i)
        s += a[i] * b[i];
    return s;
}

// Checks analytic[i] == d f / d x[i] by central differences, for every i.
void expect_gradient(std::vector<double>& x, const std::function<double()>& f,
                     const std::vector<double>& analytic, const char* what) {
    ASSERT_EQ(x.size(), analytic.size()) << what;
    const double h = 1e-6;
    for (std::size_t i = 0; i < x.size(); ++i) {
        const double saved = x[i];
        x[i] = saved + h;
        const double up = f();
        x[i] = saved - h;
        const double down = f();
        x[i] = saved;
        const double numeric = (up - down) / (2 * h);
        EXPECT_NEAR(analytic[i], numeric, 1e-6 * (1.0 + std::abs(numeric)))
            << what << " element " << i;
    }
}

template <typename T>
void check_gemm(bool ta, bool tb) {
    const ix m = 5, n = 7, kk = 3;
    const ix lda = (ta ? m : kk) + 2, ldb = (tb ? kk : n) + 1, ldc = n + 3;
    auto a0 = random_vector(static_cast<std::size_t>((ta ? kk : m) * lda), 1);
    auto b0 = random_vector(static_cast<std::size_t>((tb ? n : kk) * ldb), 2);
    auto c0 = random_vector(static_cast<std::size_t>(m * ldc), 3);
    std::vector<T> a(a0.begin(), a0.end()), b(b0.begin(), b0.end()), c(c0.begin(), c0.end());
    k::gemm<T>(ta, tb, m, n, kk, T(2), a.data(), lda, b.data(), ldb, T(0.5), c.data(), ldc);
    for (ix i = 0; i < m; ++i)
        for (ix j = 0; j < n; ++j) {
            double s = 0;
            for (ix p = 0; p < kk; ++p)
                s += static_cast<double>(ta ? a[p * lda + i] : a[i * lda + p]) *
                     static_cast<double>(tb ? b[j * ldb + p] : b[p * ldb + j]);
            const double expect =
                2 * s + 0.5 * static_cast<double>(static_cast<T>(c0[i * ldc + j]));
            EXPECT_NEAR(static_cast<double>(c[i * ldc + j]), expect, sizeof(T) == 4 ? 1e-4 : 1e-12);
        }
}

TEST(Kernels, GemmMatchesNaiveProductForEveryTransposeAndType) {
    for (bool ta : {false, true})
        for (bool tb : {false, true}) {
            check_gemm<float>(ta, tb);
            check_gemm<double>(ta, tb);
        }
}

TEST(Kernels, RmsNormBackwardMatchesFiniteDifferences) {
    const ix rows = 3, cols = 6;
    auto x = random_vector(rows * cols, 4);
    auto w = random_vector(cols, 5);
    const auto g = random_vector(rows * cols, 6); // dL/dy for L = <g, y>
    std::vector<double> y(x.size()), rstd(rows);
    auto loss = [&] {
        k::rms_norm_forward<double>(x.data(), w.data(), rows, cols, 1e-5, y.data(), rstd.data());
        return dot(g, y);
    };
    loss();
    std::vector<double> dx(x.size()), dw(cols, 0.0);
    k::rms_norm_backward<double>(x.data(), w.data(), rstd.data(), g.data(), rows, cols, dx.data(),
                                 dw.data());
    expect_gradient(x, loss, dx, "rms_norm dx");
    expect_gradient(w, loss, dw, "rms_norm dweight");
}

TEST(Kernels, SwigluBackwardMatchesFiniteDifferences) {
    const ix n = 9;
    auto gate = random_vector(n, 7, 2.0);
    auto up = random_vector(n, 8);
    const auto g = random_vector(n, 9);
    std::vector<double> out(n);
    auto loss = [&] {
        k::swiglu_forward<double>(gate.data(), up.data(), n, out.data());
        return dot(g, out);
    };
    std::vector<double> dgate(n), dup(n);
    k::swiglu_backward<double>(gate.data(), up.data(), g.data(), n, dgate.data(), dup.data());
    expect_gradient(gate, loss, dgate, "swiglu dgate");
    expect_gradient(up, loss, dup, "swiglu dup");
}

TEST(Kernels, RotaryInverseIsItsTransposeAndUndoesIt) {
    const ix rows = 4, heads = 2, d = 6, ld = heads * d + 2;
    const std::vector<ix> pos = {0, 3, 17, 1000};
    auto x = random_vector(static_cast<std::size_t>(rows * ld), 10);
    auto y = random_vector(static_cast<std::size_t>(rows * ld), 11);
    auto rx = x;
    k::rotary<double>(rx.data(), rows, heads, d, ld, pos.data(), 10000.0, false);
    auto ity = y;
    k::rotary<double>(ity.data(), rows, heads, d, ld, pos.data(), 10000.0, true);
    // <R x, y> == <x, R^T y> over the rotated columns (padding columns are untouched).
    EXPECT_NEAR(dot(rx, y), dot(x, ity), 1e-10);
    auto back = rx;
    k::rotary<double>(back.data(), rows, heads, d, ld, pos.data(), 10000.0, true);
    for (std::size_t i = 0; i < x.size(); ++i)
        EXPECT_NEAR(back[i], x[i], 1e-12);
    // Position 0 is the identity.
    for (ix c = 0; c < ld; ++c)
        EXPECT_DOUBLE_EQ(rx[static_cast<std::size_t>(c)], x[static_cast<std::size_t>(c)]);
}

TEST(Kernels, CrossEntropyLossAndGradientMatchFiniteDifferences) {
    const ix rows = 4, vocab = 7;
    auto z = random_vector(rows * vocab, 12, 2.0);
    const std::vector<std::int32_t> labels = {3, -1, 0, 6};
    std::vector<double> dz(z.size());
    const double scale = 0.25;
    auto loss = [&] {
        return scale *
               k::cross_entropy<double>(z.data(), labels.data(), rows, vocab, scale, dz.data());
    };
    loss();
    const auto analytic = dz;
    expect_gradient(z, loss, analytic, "cross_entropy dlogits");
    // The loss of a row is -log softmax[label]: check one row by hand.
    double sum = 0;
    for (ix c = 0; c < vocab; ++c)
        sum += std::exp(z[static_cast<std::size_t>(c)]);
    std::vector<double> one(z.begin(), z.begin() + vocab);
    const double row0 =
        k::cross_entropy<double>(one.data(), labels.data(), 1, vocab, 1.0, dz.data());
    EXPECT_NEAR(row0, std::log(sum) - z[3], 1e-12);
}

TEST(Kernels, EmbeddingBackwardAccumulatesRowsOfRepeatedIds) {
    const ix vocab = 5, cols = 3;
    auto table = random_vector(vocab * cols, 13);
    const std::vector<std::int32_t> ids = {4, 1, 4};
    std::vector<double> out(ids.size() * cols);
    k::embedding_forward<double>(table.data(), ids.data(), 3, cols, out.data());
    const auto g = random_vector(out.size(), 14);
    auto loss = [&] {
        k::embedding_forward<double>(table.data(), ids.data(), 3, cols, out.data());
        return dot(g, out);
    };
    std::vector<double> dtable(table.size(), 0.0);
    k::embedding_backward<double>(g.data(), ids.data(), 3, cols, dtable.data());
    expect_gradient(table, loss, dtable, "embedding dtable");
}

// ---- attention ------------------------------------------------------------------------------

// Documents laid out back to back; heads x d per token; q/k/v with a row stride wider than the
// heads to exercise ld (as the fused QKV buffer of a layer).
struct attention_case {
    std::vector<ix> doc_tokens = {5, 1, 8, 3};
    ix heads = 2, d = 4, ld = 2 * 4 + 3;
    ix total() const {
        ix t = 0;
        for (auto n : doc_tokens)
            t += n;
        return t;
    }
};

// Dense reference: token t attends token u iff same document and u <= t.
void reference_attention(const attention_case& c, const std::vector<double>& q,
                         const std::vector<double>& kk, const std::vector<double>& v,
                         std::vector<double>& out) {
    const ix total = c.total();
    std::vector<ix> doc_of, start_of;
    ix start = 0;
    for (std::size_t i = 0; i < c.doc_tokens.size(); ++i) {
        for (ix t = 0; t < c.doc_tokens[i]; ++t) {
            doc_of.push_back(static_cast<ix>(i));
            start_of.push_back(start);
        }
        start += c.doc_tokens[i];
    }
    out.assign(static_cast<std::size_t>(total * c.heads * c.d), 0.0);
    const double scale = 1.0 / std::sqrt(static_cast<double>(c.d));
    for (ix h = 0; h < c.heads; ++h)
        for (ix t = 0; t < total; ++t) {
            std::vector<double> w(static_cast<std::size_t>(total), 0.0);
            double mx = -INFINITY;
            for (ix u = 0; u < total; ++u) {
                if (doc_of[u] != doc_of[t] || u > t)
                    continue;
                double s = 0;
                for (ix e = 0; e < c.d; ++e)
                    s += q[t * c.ld + h * c.d + e] * kk[u * c.ld + h * c.d + e];
                w[u] = s * scale;
                mx = std::max(mx, w[u]);
            }
            double sum = 0;
            for (ix u = 0; u < total; ++u)
                if (doc_of[u] == doc_of[t] && u <= t)
                    sum += (w[u] = std::exp(w[u] - mx));
                else
                    w[u] = 0;
            for (ix u = 0; u < total; ++u)
                for (ix e = 0; e < c.d; ++e)
                    out[t * c.heads * c.d + h * c.d + e] += w[u] / sum * v[u * c.ld + h * c.d + e];
        }
}

struct whole_docs {
    std::vector<ix> cu, offsets;
    k::attention_chunks chunks(const attention_case& c) const {
        return {cu, cu, offsets, c.heads, c.d, 1.0 / std::sqrt(static_cast<double>(c.d))};
    }
};

whole_docs whole_document_chunks(const attention_case& c) {
    whole_docs w;
    w.cu.push_back(0);
    for (auto n : c.doc_tokens) {
        w.cu.push_back(w.cu.back() + n);
        w.offsets.push_back(0);
    }
    return w;
}

void check_forward_against_reference(const attention_case& c) {
    const auto n = static_cast<std::size_t>(c.total() * c.ld);
    auto q = random_vector(n, 20), kk = random_vector(n, 21), v = random_vector(n, 22);
    auto w = whole_document_chunks(c);
    const ix width = c.heads * c.d;
    std::vector<double> out(static_cast<std::size_t>(c.total() * width));
    std::vector<double> lse(static_cast<std::size_t>(c.total() * c.heads));
    k::attention_forward<double>(w.chunks(c), q.data(), c.ld, kk.data(), c.ld, v.data(), c.ld,
                                 out.data(), width, lse.data());
    std::vector<double> ref;
    reference_attention(c, q, kk, v, ref);
    for (std::size_t i = 0; i < out.size(); ++i)
        EXPECT_NEAR(out[i], ref[i], 1e-12) << i;
    // Float agrees with the double reference to float precision.
    std::vector<float> qf(q.begin(), q.end()), kf(kk.begin(), kk.end()), vf(v.begin(), v.end());
    std::vector<float> outf(out.size()), lsef(lse.size());
    k::attention_forward<float>(w.chunks(c), qf.data(), c.ld, kf.data(), c.ld, vf.data(), c.ld,
                                outf.data(), width, lsef.data());
    for (std::size_t i = 0; i < out.size(); ++i)
        EXPECT_NEAR(outf[i], ref[i], 1e-5) << i;
}

TEST(KernelsAttention, ForwardMatchesDenseMaskedReference) {
    check_forward_against_reference(attention_case{});
    // Documents longer than one 64-query block, and one of exactly a block.
    attention_case long_docs;
    long_docs.doc_tokens = {150, 64, 5, 70};
    check_forward_against_reference(long_docs);
}

void check_backward_by_finite_differences(const attention_case& c) {
    const auto n = static_cast<std::size_t>(c.total() * c.ld);
    auto q = random_vector(n, 30), kk = random_vector(n, 31), v = random_vector(n, 32);
    auto w = whole_document_chunks(c);
    const ix width = c.heads * c.d;
    std::vector<double> out(static_cast<std::size_t>(c.total() * width));
    std::vector<double> lse(static_cast<std::size_t>(c.total() * c.heads));
    const auto g = random_vector(out.size(), 33);
    auto loss = [&] {
        k::attention_forward<double>(w.chunks(c), q.data(), c.ld, kk.data(), c.ld, v.data(), c.ld,
                                     out.data(), width, lse.data());
        return dot(g, out);
    };
    loss();
    std::vector<double> dq(n, 0.0), dk(n, 0.0), dv(n, 0.0);
    k::attention_backward<double>(w.chunks(c), q.data(), c.ld, kk.data(), c.ld, v.data(), c.ld,
                                  out.data(), width, g.data(), width, lse.data(), dq.data(), c.ld,
                                  dk.data(), c.ld, dv.data(), c.ld);
    // The padding columns of each row get no gradient from the kernel (left at 0) and have none.
    expect_gradient(q, loss, dq, "attention dq");
    expect_gradient(kk, loss, dk, "attention dk");
    expect_gradient(v, loss, dv, "attention dv");
}

TEST(KernelsAttention, BackwardMatchesFiniteDifferences) {
    attention_case c;
    c.doc_tokens = {3, 1, 4};
    check_backward_by_finite_differences(c);
    c.doc_tokens = {70, 2}; // two 64-query blocks
    c.heads = 1;
    c.ld = c.d + 1;
    check_backward_by_finite_differences(c);
}

void check_chunked_equals_whole(const attention_case& c, ix chunk_tokens) {
    const ix width = c.heads * c.d;
    const auto n = static_cast<std::size_t>(c.total() * c.ld);
    auto q = random_vector(n, 40), kk = random_vector(n, 41), v = random_vector(n, 42);
    auto w = whole_document_chunks(c);
    const auto rows = static_cast<std::size_t>(c.total());
    std::vector<double> out(rows * width), lse(rows * c.heads);
    k::attention_forward<double>(w.chunks(c), q.data(), c.ld, kk.data(), c.ld, v.data(), c.ld,
                                 out.data(), width, lse.data());
    const auto g = random_vector(out.size(), 43);
    std::vector<double> dq(n), dk(n), dv(n);
    k::attention_backward<double>(w.chunks(c), q.data(), c.ld, kk.data(), c.ld, v.data(), c.ld,
                                  out.data(), width, g.data(), width, lse.data(), dq.data(), c.ld,
                                  dk.data(), c.ld, dv.data(), c.ld);

    // Split every document into chunks of at most chunk_tokens queries, in reverse order (a CP
    // rank's layout need not follow the document order); each chunk's key segment is a copy of its
    // document's prefix [0, offset + n), as a CP rank builds from the all-gathered keys.
    struct piece {
        ix doc_start, offset, tokens;
    };
    std::vector<piece> pieces;
    ix start = 0;
    for (auto len : c.doc_tokens) {
        for (ix off = 0; off < len; off += chunk_tokens)
            pieces.push_back({start, off, std::min<ix>(chunk_tokens, len - off)});
        start += len;
    }
    std::reverse(pieces.begin(), pieces.end());
    std::vector<ix> cu_q = {0}, cu_k = {0}, offsets;
    std::vector<double> cq, ck, cv, cg;
    auto append_rows = [&](std::vector<double>& dst, const std::vector<double>& src, ix from,
                           ix count, ix ld) {
        dst.insert(dst.end(), src.begin() + from * ld, src.begin() + (from + count) * ld);
    };
    for (const auto& p : pieces) {
        append_rows(cq, q, p.doc_start + p.offset, p.tokens, c.ld);
        append_rows(cg, g, p.doc_start + p.offset, p.tokens, width);
        append_rows(ck, kk, p.doc_start, p.offset + p.tokens, c.ld);
        append_rows(cv, v, p.doc_start, p.offset + p.tokens, c.ld);
        cu_q.push_back(cu_q.back() + p.tokens);
        cu_k.push_back(cu_k.back() + p.offset + p.tokens);
        offsets.push_back(p.offset);
    }
    const k::attention_chunks chunked{cu_q,    cu_k, offsets,
                                      c.heads, c.d,  1.0 / std::sqrt(static_cast<double>(c.d))};
    const auto qrows = static_cast<std::size_t>(cu_q.back());
    std::vector<double> cout(qrows * width), clse(qrows * c.heads);
    k::attention_forward<double>(chunked, cq.data(), c.ld, ck.data(), c.ld, cv.data(), c.ld,
                                 cout.data(), width, clse.data());
    std::vector<double> cdq(cq.size()), cdk(ck.size()), cdv(cv.size());
    k::attention_backward<double>(chunked, cq.data(), c.ld, ck.data(), c.ld, cv.data(), c.ld,
                                  cout.data(), width, cg.data(), width, clse.data(), cdq.data(),
                                  c.ld, cdk.data(), c.ld, cdv.data(), c.ld);
    // Scatter back: query rows map one to one; key gradients of overlapping prefixes add up.
    std::vector<double> sdk(n, 0.0), sdv(n, 0.0);
    ix qr = 0, kr = 0;
    for (const auto& p : pieces) {
        for (ix i = 0; i < p.tokens; ++i, ++qr) {
            const ix t = p.doc_start + p.offset + i;
            for (ix e = 0; e < width; ++e) {
                EXPECT_NEAR(cout[qr * width + e], out[t * width + e], 1e-13);
                EXPECT_NEAR(cdq[qr * c.ld + e], dq[t * c.ld + e], 1e-12);
            }
            EXPECT_NEAR(clse[qr * c.heads], lse[t * c.heads], 1e-13);
        }
        for (ix j = 0; j < p.offset + p.tokens; ++j, ++kr)
            for (ix e = 0; e < width; ++e) {
                sdk[(p.doc_start + j) * c.ld + e] += cdk[kr * c.ld + e];
                sdv[(p.doc_start + j) * c.ld + e] += cdv[kr * c.ld + e];
            }
    }
    for (ix t = 0; t < c.total(); ++t)
        for (ix e = 0; e < width; ++e) {
            EXPECT_NEAR(sdk[t * c.ld + e], dk[t * c.ld + e], 1e-12);
            EXPECT_NEAR(sdv[t * c.ld + e], dv[t * c.ld + e], 1e-12);
        }
}

TEST(KernelsAttention, ChunkedLikeContextParallelEqualsWholeDocuments) {
    attention_case c;
    c.doc_tokens = {11, 4, 9};
    check_chunked_equals_whole(c, 3);
    // Chunks spanning several 64-query blocks at offsets that are not block multiples.
    c.doc_tokens = {200, 3, 90};
    check_chunked_equals_whole(c, 70);
}

TEST(KernelsAttention, ShortKeySegmentIsRefused) {
    const std::vector<ix> cu_q = {0, 4}, cu_k = {0, 5}, off = {2};
    k::attention_chunks ch{cu_q, cu_k, off, 1, 2, 1.0};
    EXPECT_ANY_THROW(ch.validate());
}

} // namespace
