#include "profiler/analysis/work_check.hpp"

#include "base/error.hpp"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>

namespace wlb::profiler {
namespace {

using runtime::phase;

std::optional<double> pearson(const std::vector<work_cell>& cells) {
    const double n = static_cast<double>(cells.size());
    if (cells.size() < 3)
        return std::nullopt;
    double mx = 0, my = 0;
    for (const auto& c : cells) {
        mx += c.predicted_s;
        my += c.measured_s;
    }
    mx /= n;
    my /= n;
    double sxx = 0, syy = 0, sxy = 0;
    for (const auto& c : cells) {
        sxx += (c.predicted_s - mx) * (c.predicted_s - mx);
        syy += (c.measured_s - my) * (c.measured_s - my);
        sxy += (c.predicted_s - mx) * (c.measured_s - my);
    }
    // Constant within rounding: there is no imbalance to follow.
    if (sxx <= 1e-12 * mx * mx * n || syy <= 1e-12 * my * my * n)
        return std::nullopt;
    return sxy / std::sqrt(sxx * syy);
}

/// Index of the largest value when it stands out over the second by more than `noise`.
std::optional<std::size_t> standout(const std::vector<double>& v, double noise) {
    if (v.size() < 2)
        return std::nullopt;
    std::size_t best = 0;
    for (std::size_t i = 1; i < v.size(); ++i)
        if (v[i] > v[best])
            best = i;
    double second = -1.0;
    for (std::size_t i = 0; i < v.size(); ++i)
        if (i != best)
            second = std::max(second, v[i]);
    if (v[best] <= second * (1.0 + noise))
        return std::nullopt;
    return best;
}

std::size_t argmax(const std::vector<double>& v) {
    return static_cast<std::size_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

} // namespace

work_checker::work_checker(const std::vector<runtime::sharded_step>& batches, double noise)
    : m_noise(noise) {
    for (const auto& b : batches)
        m_batches.emplace(b.step, &b);
    if (batches.empty())
        m_out.reason = "the trace records no batches (wlbtune run and wlbtune simulate record them "
                       "beside their traces)";
}

void work_checker::add(const measured_step& m, const step_attribution& a) {
    if (m_batches.empty())
        return;
    const auto it = m_batches.find(m.step);
    if (it == m_batches.end()) {
        m_out.skipped.push_back(fmt::format("step {}: no batch recorded", m.step));
        return;
    }
    if (const auto why = shape_mismatch(m, *it->second); !why.empty()) {
        m_out.skipped.push_back(fmt::format("step {}: {}", m.step, why));
        return;
    }
    const auto work = work_of(*it->second);
    const auto pred = predicted_step(m, work);
    const auto& l = m.job_layout;

    // Cells: compute over stages, chunks and passes.
    const std::size_t first = m_out.cells.size();
    for (int d = 0; d < l.dp(); ++d)
        for (int mb = 0; mb < m.micro_batches[static_cast<std::size_t>(d)]; ++mb)
            for (int c = 0; c < l.cp(); ++c) {
                work_cell cell;
                cell.step = m.step;
                cell.replica = d;
                cell.micro_batch = mb;
                cell.cp_rank = c;
                const auto& w = work[static_cast<std::size_t>(d)][static_cast<std::size_t>(mb)]
                                    [static_cast<std::size_t>(c)];
                cell.tokens = std::llround(w.tokens);
                cell.attention_pairs = std::llround(w.pairs);
                for (int p = 0; p < l.pp(); ++p)
                    for (int v = 0; v < l.vpp(); ++v)
                        for (const auto ph : {phase::fwd, phase::bwd}) {
                            const auto u = static_cast<std::size_t>(m.unit_of(c, p, d));
                            const auto s = static_cast<std::size_t>(m.slot_of(mb, v, ph));
                            cell.measured_s += m.slots[u][s].layer_compute_s();
                            cell.predicted_s += pred.slots[u][s].layer_compute_s();
                        }
                m_out.cells.push_back(cell);
            }

    // Is the heaviest micro-batch of a replica, and the heaviest CP rank of a micro-batch, the
    // one the batch predicts?
    const auto cell_at = [&](int d, int mb, int c) -> const work_cell& {
        std::size_t i = first;
        for (int dd = 0; dd < d; ++dd)
            i += static_cast<std::size_t>(m.micro_batches[static_cast<std::size_t>(dd)] * l.cp());
        return m_out.cells[i + static_cast<std::size_t>(mb * l.cp() + c)];
    };
    for (int d = 0; d < l.dp(); ++d) {
        const int n = m.micro_batches[static_cast<std::size_t>(d)];
        std::vector<double> pm(static_cast<std::size_t>(n), 0.0), mm(pm);
        for (int mb = 0; mb < n; ++mb) {
            std::vector<double> pc(static_cast<std::size_t>(l.cp())), mc(pc);
            for (int c = 0; c < l.cp(); ++c) {
                const auto& cell = cell_at(d, mb, c);
                pc[static_cast<std::size_t>(c)] = cell.predicted_s;
                mc[static_cast<std::size_t>(c)] = cell.measured_s;
                pm[static_cast<std::size_t>(mb)] += cell.predicted_s;
                mm[static_cast<std::size_t>(mb)] += cell.measured_s;
            }
            if (const auto best = standout(pc, m_noise)) {
                ++m_out.heaviest_cp_rank_groups;
                m_out.heaviest_cp_rank_agree += argmax(mc) == *best ? 1 : 0;
            }
        }
        if (const auto best = standout(pm, m_noise)) {
            ++m_out.heaviest_micro_batch_groups;
            m_out.heaviest_micro_batch_agree += argmax(mm) == *best ? 1 : 0;
        }
    }

    // What the batch-borne causes cost with the predicted durations (simulated what-if).
    whatif_options wo;
    wo.noise = m_noise;
    wo.even_workers = true; // the predicted durations have no slow worker
    const double replay = whatif_step_seconds(pred, {}, wo);
    for (const cause c : batch_causes) {
        const auto k = static_cast<std::size_t>(c);
        m_out.predicted_lost_s[k] += replay - whatif_step_seconds(pred, {c}, wo);
        m_out.measured_lost_s[k] += a.causes[k].lost_s;
    }
    ++m_out.steps;
}

work_check work_checker::finish() && {
    if (m_out.steps > 0) {
        m_out.available = true;
        m_out.reason.clear();
        m_out.correlation = pearson(m_out.cells);
    } else if (!m_batches.empty()) {
        m_out.reason =
            m_out.skipped.empty()
                ? "no step with a recorded batch was attributed"
                : "no attributed step matches its recorded batch; first: " + m_out.skipped.front();
    }
    return std::move(m_out);
}

} // namespace wlb::profiler
