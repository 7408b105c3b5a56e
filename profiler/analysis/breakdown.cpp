#include "profiler/analysis/breakdown.hpp"

#include <algorithm>
#include <limits>

namespace wlb::profiler {
namespace {

using interval = std::pair<std::int64_t, std::int64_t>;

std::vector<interval> merged(std::vector<interval> v) {
    std::sort(v.begin(), v.end());
    std::vector<interval> out;
    for (const auto& x : v) {
        if (!out.empty() && x.first <= out.back().second)
            out.back().second = std::max(out.back().second, x.second);
        else
            out.push_back(x);
    }
    return out;
}

std::int64_t length(const std::vector<interval>& v) {
    std::int64_t n = 0;
    for (const auto& x : v)
        n += x.second - x.first;
    return n;
}

// Length of [a, b) covered by the sorted, disjoint `cover`.
std::int64_t covered(const std::vector<interval>& cover, std::int64_t a, std::int64_t b) {
    auto it = std::upper_bound(cover.begin(), cover.end(),
                               interval{a, std::numeric_limits<std::int64_t>::max()});
    if (it != cover.begin())
        --it;
    std::int64_t n = 0;
    for (; it != cover.end() && it->first < b; ++it)
        n += std::max<std::int64_t>(0, std::min(b, it->second) - std::max(a, it->first));
    return n;
}

} // namespace

std::vector<step_breakdown> compute_breakdown(const job_trace& job, const step_index& index) {
    std::vector<step_breakdown> out;
    for (std::int64_t step : job.steps) {
        step_breakdown sb;
        sb.step = step;
        sb.start_ns = std::numeric_limits<std::int64_t>::max();
        sb.end_ns = std::numeric_limits<std::int64_t>::min();
        for (std::size_t r = 0; r < job.ranks.size(); ++r)
            for (std::uint32_t i : index.events(static_cast<int>(r), step)) {
                const auto& e = job.ranks[r].events[i];
                sb.start_ns = std::min(sb.start_ns, e.start_ns);
                sb.end_ns = std::max(sb.end_ns, e.end_ns());
            }
        if (sb.start_ns > sb.end_ns)
            continue;
        const double window = sb.seconds();
        std::vector<interval> compute, all;
        for (std::size_t r = 0; r < job.ranks.size(); ++r) {
            const auto span = index.events(static_cast<int>(r), step);
            if (span.empty())
                continue;
            rank_breakdown rb;
            rb.rank = static_cast<int>(r);
            compute.clear();
            all.clear();
            for (std::uint32_t i : span) {
                const auto& e = job.ranks[r].events[i];
                if (e.where == runtime::lane::host)
                    continue;
                all.emplace_back(e.start_ns, e.end_ns());
                if (e.kind != runtime::event_kind::compute)
                    continue;
                compute.emplace_back(e.start_ns, e.end_ns());
                const double s = static_cast<double>(e.dur_ns) * 1e-9;
                switch (e.work) {
                case work_class::attention:
                    rb.attention_s += s;
                    break;
                case work_class::linear:
                    rb.linear_s += s;
                    break;
                case work_class::mixed:
                    rb.unsplit_s += s;
                    break;
                default:
                    rb.other_s += s;
                    break;
                }
            }
            const auto cover = merged(std::move(compute));
            rb.compute_busy_s = static_cast<double>(length(cover)) * 1e-9;
            for (std::uint32_t i : span) {
                const auto& e = job.ranks[r].events[i];
                if (!e.is_comm())
                    continue;
                auto& c = rb.comm[static_cast<std::size_t>(e.where)];
                const double total = static_cast<double>(e.dur_ns) * 1e-9;
                const double over =
                    static_cast<double>(covered(cover, e.start_ns, e.end_ns())) * 1e-9;
                c.total_s += total;
                c.overlapped_s += over;
                c.exposed_s += total - over;
            }
            rb.idle_s = std::max(0.0, window - static_cast<double>(length(merged(all))) * 1e-9);
            sb.ranks.push_back(rb);
            compute.clear();
        }
        out.push_back(std::move(sb));
    }
    return out;
}

} // namespace wlb::profiler
