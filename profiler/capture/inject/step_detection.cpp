#include "profiler/capture/inject/step_detection.hpp"

#include "profiler/capture/activity_trace.hpp"

#include <algorithm>
#include <cstdio>
#include <unordered_map>

namespace wlb::profiler {
namespace {

/// Kernels looked at to find the period (enough for hundreds of steps of most jobs).
constexpr std::size_t period_sample = 8192;

std::int64_t quantile(std::vector<std::int64_t> v, double q) {
    if (v.empty())
        return 0;
    const auto k = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1));
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    return v[k];
}

std::string fixed(double v, int digits) {
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%.*f", digits, v);
    return buffer;
}

/// The union of the device's busy intervals, in order, disjoint.
class busy_timeline {
public:
    explicit busy_timeline(const std::vector<device_activity>& activities) {
        std::vector<std::pair<std::int64_t, std::int64_t>> spans;
        spans.reserve(activities.size());
        for (const auto& a : activities)
            if (a.end_ns >= a.start_ns && a.kind != activity_kind::synchronization)
                spans.emplace_back(a.start_ns, a.end_ns);
        std::sort(spans.begin(), spans.end());
        for (const auto& s : spans) {
            if (!m_busy.empty() && s.first <= m_busy.back().second)
                m_busy.back().second = std::max(m_busy.back().second, s.second);
            else
                m_busy.push_back(s);
        }
    }
    /// The middle of the longest idle stretch inside [lo, hi]; lo when the device is busy
    /// throughout.
    [[nodiscard]] std::int64_t idle_middle(std::int64_t lo, std::int64_t hi) const {
        if (hi <= lo)
            return lo;
        auto it = std::lower_bound(m_busy.begin(), m_busy.end(), lo,
                                   [](const auto& b, std::int64_t t) { return b.second <= t; });
        std::int64_t free_from = lo;
        std::int64_t best_len = 0, best_mid = lo;
        for (; it != m_busy.end() && it->first < hi; ++it) {
            if (it->first > free_from && it->first - free_from > best_len) {
                best_len = it->first - free_from;
                best_mid = free_from + best_len / 2;
            }
            free_from = std::max(free_from, it->second);
        }
        if (hi > free_from && hi - free_from > best_len)
            best_mid = free_from + (hi - free_from) / 2;
        return best_mid;
    }

private:
    std::vector<std::pair<std::int64_t, std::int64_t>> m_busy;
};

} // namespace

std::optional<nccl_period> find_nccl_period(const std::vector<std::int32_t>& symbols,
                                            const std::vector<std::int64_t>& gaps_ns) {
    const std::size_t n = std::min(symbols.size(), period_sample);
    if (n < 6 || gaps_ns.size() + 1 < n)
        return std::nullopt;
    auto mismatches = [&](std::size_t p) {
        std::size_t bad = 0;
        for (std::size_t i = 0; i + p < n; ++i)
            bad += symbols[i] != symbols[i + p] ? 1 : 0;
        return bad;
    };
    auto mismatch = [&](std::size_t p) {
        return static_cast<double>(mismatches(p)) / static_cast<double>(n - p);
    };
    // A few kernels off the pattern (initialization before the first step, a capture cut in the
    // middle of one) are allowed besides the fraction.
    std::size_t base = 0;
    for (std::size_t p = 1; 3 * p <= n && base == 0; ++p)
        if (static_cast<double>(mismatches(p)) <=
            nccl_max_mismatch * static_cast<double>(n - p) + 2.0)
            base = p;
    if (base == 0)
        return std::nullopt;
    // A period is a multiple of the names' period whose cut gap stands out. Period 1 cannot be
    // told from a steady stream of one collective, so a step needs two NCCL kernels at least.
    for (std::size_t p = std::max<std::size_t>(base, 2); 3 * p <= n; p += base) {
        std::vector<std::vector<std::int64_t>> at(p); // gap before kernel j lies at j % p
        for (std::size_t j = 0; j + 1 < n; ++j)
            at[(j + 1) % p].push_back(std::max<std::int64_t>(0, gaps_ns[j]));
        std::size_t best = 0;
        std::int64_t best_low = -1;
        std::vector<std::int64_t> high(p);
        for (std::size_t o = 0; o < p; ++o) {
            const auto low = quantile(at[o], 0.25);
            high[o] = quantile(at[o], 0.75);
            if (low > best_low) {
                best_low = low;
                best = o;
            }
        }
        std::int64_t other = 1;
        for (std::size_t o = 0; o < p; ++o)
            if (o != best)
                other = std::max(other, high[o]);
        const double separation = static_cast<double>(best_low) / static_cast<double>(other);
        if (at[best].size() >= 2 && separation >= nccl_min_separation)
            return nccl_period{p, best, separation, mismatch(p)};
    }
    return std::nullopt;
}

step_plan steps_from_nccl(const std::vector<device_activity>& activities) {
    step_plan plan;
    plan.source = step_source::nccl_period;
    std::vector<const device_activity*> nccl;
    for (const auto& a : activities)
        if (a.kind == activity_kind::kernel && a.name.rfind("nccl", 0) == 0 &&
            a.end_ns >= a.start_ns)
            nccl.push_back(&a);
    std::sort(nccl.begin(), nccl.end(),
              [](const auto* x, const auto* y) { return x->start_ns < y->start_ns; });
    std::unordered_map<std::string, std::int32_t> ids;
    std::vector<std::int32_t> symbols;
    std::vector<std::int64_t> gaps;
    for (std::size_t i = 0; i < nccl.size(); ++i) {
        const auto name = short_kernel_name(nccl[i]->name);
        symbols.push_back(ids.emplace(name, static_cast<std::int32_t>(ids.size())).first->second);
        if (i > 0)
            gaps.push_back(nccl[i]->start_ns - nccl[i - 1]->end_ns);
    }
    const auto period = find_nccl_period(symbols, gaps);
    if (!period) {
        plan.source = step_source::none;
        plan.description = nccl.empty()
                               ? "no NCCL kernels"
                               : "the " + std::to_string(nccl.size()) +
                                     " NCCL kernels repeat no pattern with a clear gap between "
                                     "repeats (three repeats of two kernels at least are needed)";
        return plan;
    }
    const std::size_t p = period->period;
    const std::size_t n = nccl.size();
    const busy_timeline busy(activities);
    // Boundaries before NCCL kernels b = offset + m * p.
    std::vector<std::size_t> bounds;
    for (std::size_t b = period->offset; b < n; b += p)
        bounds.push_back(b);
    std::vector<std::int64_t> cut(bounds.size(), 0);
    std::vector<bool> known(bounds.size(), false);
    for (std::size_t m = 0; m < bounds.size(); ++m)
        if (bounds[m] > 0) {
            cut[m] = busy.idle_middle(nccl[bounds[m] - 1]->end_ns, nccl[bounds[m]]->start_ns);
            known[m] = true;
        }
    // A boundary with no NCCL kernel before it (offset 0) and the end of the last step: the
    // typical distance from a step's first NCCL kernel back to its cut, and from its last
    // NCCL kernel on to the next cut.
    std::vector<std::int64_t> heads, tails;
    for (std::size_t m = 0; m < bounds.size(); ++m) {
        if (!known[m])
            continue;
        heads.push_back(nccl[bounds[m]]->start_ns - cut[m]);
        tails.push_back(cut[m] - nccl[bounds[m] - 1]->end_ns);
    }
    const std::int64_t head = quantile(heads, 0.5);
    const std::int64_t tail = quantile(tails, 0.5);
    if (!bounds.empty() && !known[0])
        cut[0] = nccl[bounds[0]]->start_ns - head;
    for (std::size_t m = 0; m < bounds.size(); ++m) {
        const std::size_t last = m + 1 < bounds.size() ? bounds[m + 1] : n;
        if (last - bounds[m] != p) {
            ++plan.partial_left_out;
            continue;
        }
        const std::int64_t end = m + 1 < bounds.size() ? cut[m + 1] : nccl[n - 1]->end_ns + tail;
        plan.steps.push_back(
            {static_cast<std::int64_t>(plan.steps.size()), cut[m], std::max(end, cut[m])});
    }
    if (period->offset > 0)
        ++plan.partial_left_out; // the kernels before the first boundary
    plan.description = "the NCCL kernel sequence repeats every " + std::to_string(p) +
                       " kernels (" + std::to_string(n) +
                       " NCCL kernels; the gap between repeats " + fixed(period->separation, 1) +
                       "x the longest gap inside one, " + fixed(100.0 * period->mismatch, 1) +
                       "% of kernels off the pattern); steps cut in the device's idle time "
                       "between repeats";
    return plan;
}

step_plan choose_steps(step_source wanted, const std::vector<step_span>& nvtx,
                       const std::vector<step_span>& profiler_api,
                       const std::vector<device_activity>& activities,
                       const std::string& step_names) {
    step_plan plan;
    auto from_spans = [&](step_source s, const std::vector<step_span>& spans,
                          const std::string& what) {
        plan.source = s;
        plan.steps = spans;
        plan.description = what + " (" + std::to_string(spans.size()) + " steps)";
    };
    const bool any_nvtx = !nvtx.empty();
    const bool any_api = !profiler_api.empty();
    std::string why_not;
    switch (wanted) {
    case step_source::nvtx:
        if (any_nvtx)
            from_spans(step_source::nvtx, nvtx, "NVTX step ranges, " + step_names);
        else
            why_not = "WLBTUNE_STEP_SOURCE=nvtx, but no NVTX range was named like a step (" +
                      step_names + ")";
        break;
    case step_source::profiler_api:
        if (any_api)
            from_spans(step_source::profiler_api, profiler_api,
                       "cudaProfilerStart .. cudaProfilerStop spans");
        else
            why_not = "WLBTUNE_STEP_SOURCE=profiler-api, but the process never called "
                      "cudaProfilerStart/Stop";
        break;
    case step_source::nccl_period: {
        plan = steps_from_nccl(activities);
        if (plan.source == step_source::none)
            why_not = "WLBTUNE_STEP_SOURCE=nccl, but " + plan.description;
        break;
    }
    case step_source::automatic:
        if (any_nvtx) {
            from_spans(step_source::nvtx, nvtx, "NVTX step ranges, " + step_names);
        } else if (any_api) {
            from_spans(step_source::profiler_api, profiler_api,
                       "cudaProfilerStart .. cudaProfilerStop spans");
        } else {
            plan = steps_from_nccl(activities);
            if (plan.source == step_source::none)
                why_not = "no NVTX range named like a step (" + step_names +
                          "), no cudaProfilerStart/Stop, and " + plan.description;
        }
        break;
    case step_source::none:
        why_not = "WLBTUNE_STEP_SOURCE=none";
        break;
    }
    if (plan.source == step_source::none || plan.steps.empty()) {
        plan = step_plan{};
        plan.source = step_source::none;
        plan.description = "one step holds the whole capture: " +
                           (why_not.empty() ? std::string("no step was found") : why_not);
        std::int64_t lo = INT64_MAX, hi = INT64_MIN;
        for (const auto& a : activities) {
            lo = std::min(lo, a.start_ns);
            hi = std::max(hi, a.end_ns);
        }
        if (lo <= hi)
            plan.steps.push_back({0, lo, hi});
    }
    return plan;
}

} // namespace wlb::profiler
