#include "profiler/analysis/breakdown.hpp"

#include <algorithm>
#include <limits>

namespace wlb::profiler {

std::vector<step_breakdown> compute_breakdown(const job_trace& job) {
    std::vector<step_breakdown> out;
    // Per rank, where each step's summary is (summaries are by step).
    std::vector<std::size_t> next(job.ranks.size(), 0);
    for (std::int64_t step : job.steps) {
        step_breakdown sb;
        sb.step = step;
        sb.start_ns = std::numeric_limits<std::int64_t>::max();
        sb.end_ns = std::numeric_limits<std::int64_t>::min();
        std::vector<std::pair<int, const step_summary*>> here;
        for (std::size_t r = 0; r < job.ranks.size(); ++r) {
            const auto& sums = job.ranks[r].summaries;
            auto& k = next[r];
            while (k < sums.size() && sums[k].step < step)
                ++k;
            if (k >= sums.size() || sums[k].step != step)
                continue;
            here.emplace_back(static_cast<int>(r), &sums[k]);
            sb.start_ns = std::min(sb.start_ns, sums[k].first_ns);
            sb.end_ns = std::max(sb.end_ns, sums[k].last_ns);
        }
        if (here.empty())
            continue;
        const double window = sb.seconds();
        for (const auto& [r, sm] : here) {
            rank_breakdown rb;
            rb.rank = r;
            rb.attention_s = static_cast<double>(sm->attention_ns) * 1e-9;
            rb.linear_s = static_cast<double>(sm->linear_ns) * 1e-9;
            rb.other_s = static_cast<double>(sm->other_ns) * 1e-9;
            rb.unsplit_s = static_cast<double>(sm->unsplit_ns) * 1e-9;
            rb.memory_s = static_cast<double>(sm->memory_ns) * 1e-9;
            rb.compute_busy_s = static_cast<double>(sm->compute_busy_ns) * 1e-9;
            rb.busy_s = static_cast<double>(sm->busy_ns) * 1e-9;
            rb.span_s = static_cast<double>(sm->busy_last_ns - sm->busy_first_ns) * 1e-9;
            for (const auto& c : sm->comm) {
                // A collective's lane is its group's, settled with the layout.
                const auto where = c.collective && c.group >= 0
                                       ? job.groups[static_cast<std::size_t>(c.group)].where
                                       : c.where;
                auto& split = rb.comm[static_cast<std::size_t>(where)];
                split.total_s += static_cast<double>(c.total_ns) * 1e-9;
                split.exposed_s += static_cast<double>(c.exposed_ns) * 1e-9;
                split.overlapped_s += static_cast<double>(c.total_ns - c.exposed_ns) * 1e-9;
            }
            rb.idle_s = std::max(0.0, window - rb.busy_s);
            sb.ranks.push_back(rb);
        }
        out.push_back(std::move(sb));
    }
    return out;
}

} // namespace wlb::profiler
