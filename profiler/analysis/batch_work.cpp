#include "profiler/analysis/batch_work.hpp"

#include "base/error.hpp"

#include <cmath>
#include <fmt/format.h>
#include <optional>
#include <utility>

namespace wlb::profiler {
namespace {

using runtime::phase;

/// Least squares of y on a and b without intercept; nullopt when singular or a coefficient
/// comes out negative.
std::optional<std::pair<double, double>>
fit2(const std::vector<double>& a, const std::vector<double>& b, const std::vector<double>& y) {
    double aa = 0, ab = 0, bb = 0, ay = 0, by = 0;
    for (std::size_t i = 0; i < y.size(); ++i) {
        aa += a[i] * a[i];
        ab += a[i] * b[i];
        bb += b[i] * b[i];
        ay += a[i] * y[i];
        by += b[i] * y[i];
    }
    const double det = aa * bb - ab * ab;
    if (!(det > 1e-9 * aa * bb))
        return std::nullopt;
    const double x = (ay * bb - by * ab) / det;
    const double z = (by * aa - ay * ab) / det;
    if (x < 0.0 || z < 0.0)
        return std::nullopt;
    return std::pair{x, z};
}

} // namespace

batch_work work_of(const runtime::sharded_step& batch) {
    batch_work w(batch.replicas.size());
    for (std::size_t d = 0; d < batch.replicas.size(); ++d)
        for (const auto& mb : batch.replicas[d]) {
            auto& ranks = w[d].emplace_back(mb.ranks.size());
            for (std::size_t c = 0; c < mb.ranks.size(); ++c)
                for (const auto& ch : mb.ranks[c].chunks) {
                    ranks[c].tokens += static_cast<double>(ch.q_tokens);
                    ranks[c].pairs +=
                        static_cast<double>(runtime::causal_pairs(ch.q_tokens, ch.q_offset));
                }
        }
    return w;
}

std::string shape_mismatch(const measured_step& m, const runtime::sharded_step& batch) {
    const auto& l = m.job_layout;
    if (static_cast<int>(batch.replicas.size()) != l.dp())
        return fmt::format("the batch has {} replicas, the trace {}", batch.replicas.size(),
                           l.dp());
    for (int d = 0; d < l.dp(); ++d) {
        const auto& rep = batch.replicas[static_cast<std::size_t>(d)];
        if (static_cast<int>(rep.size()) != m.micro_batches[static_cast<std::size_t>(d)])
            return fmt::format("replica {} has {} micro-batches in the batch, {} in the trace", d,
                               rep.size(), m.micro_batches[static_cast<std::size_t>(d)]);
        for (std::size_t mb = 0; mb < rep.size(); ++mb)
            if (static_cast<int>(rep[mb].ranks.size()) != l.cp())
                return fmt::format("micro-batch {} of replica {} has {} CP shards in the batch, "
                                   "cp = {} in the trace",
                                   mb, d, rep[mb].ranks.size(), l.cp());
    }
    return {};
}

measured_step predicted_step(const measured_step& m, const runtime::sharded_step& batch) {
    const auto mismatch = shape_mismatch(m, batch);
    WLB_EXPECTS(mismatch.empty(), "predicted_step: {}", mismatch);
    return predicted_step(m, work_of(batch));
}

measured_step predicted_step(const measured_step& m, const batch_work& work) {
    const auto& l = m.job_layout;
    measured_step out = m;
    for (int p = 0; p < l.pp(); ++p)
        for (int v = 0; v < l.vpp(); ++v)
            for (const auto ph : {phase::fwd, phase::bwd}) {
                // The column's cells.
                struct at {
                    int unit, slot;
                    cell_work w;
                };
                std::vector<at> cells;
                double lin = 0, att = 0, tok = 0, pairs = 0;
                for (int d = 0; d < l.dp(); ++d)
                    for (int mb = 0; mb < m.micro_batches[static_cast<std::size_t>(d)]; ++mb)
                        for (int c = 0; c < l.cp(); ++c) {
                            const int u = m.unit_of(c, p, d), s = m.slot_of(mb, v, ph);
                            const auto& sc =
                                m.slots[static_cast<std::size_t>(u)][static_cast<std::size_t>(s)];
                            if (!sc.present)
                                continue;
                            const auto& w =
                                work[static_cast<std::size_t>(d)][static_cast<std::size_t>(mb)]
                                    [static_cast<std::size_t>(c)];
                            cells.push_back({u, s, w});
                            lin += sc.linear_s;
                            att += sc.attention_s;
                            tok += w.tokens;
                            pairs += w.pairs;
                        }
                if (cells.empty())
                    continue;
                // Linear part: seconds per token. Attention part: seconds per pair plus seconds
                // per query token where the cells allow both (kernels run short documents at a
                // lower rate: tiles padded, less reuse), else per pair alone.
                const double per_token = tok > 0 ? lin / tok : 0.0;
                double per_pair = pairs > 0 ? att / pairs : 0.0, att_per_token = 0.0;
                if (cells.size() >= 3) {
                    std::vector<double> a, b, y;
                    for (const auto& x : cells) {
                        a.push_back(x.w.pairs);
                        b.push_back(x.w.tokens);
                        y.push_back(m.slots[static_cast<std::size_t>(x.unit)]
                                           [static_cast<std::size_t>(x.slot)]
                                               .attention_s);
                    }
                    if (const auto f = fit2(a, b, y)) {
                        per_pair = f->first;
                        att_per_token = f->second;
                    }
                }
                for (const auto& x : cells) {
                    auto& sc = out.slots[static_cast<std::size_t>(x.unit)]
                                        [static_cast<std::size_t>(x.slot)];
                    sc.linear_s = per_token * x.w.tokens;
                    sc.attention_s = per_pair * x.w.pairs + att_per_token * x.w.tokens;
                }
            }
    return out;
}

} // namespace wlb::profiler
