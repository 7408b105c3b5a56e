#include "profiler/analysis/stragglers.hpp"

#include <algorithm>
#include <limits>
#include <map>
#include <tuple>

namespace wlb::profiler {
namespace {

double median(std::vector<double>& v) {
    if (v.empty())
        return 0.0;
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// (name, dp, micro-batch, chunk, pass): the same kernel for peers of one step.
using kernel_key = std::tuple<std::int32_t, int, int, int, int>;

// Per rank: median duration of each kernel key; then ratios to the peers' median.
std::vector<rank_speed> speeds(const std::map<kernel_key, std::map<int, std::vector<double>>>& by,
                               std::size_t world, std::vector<std::vector<double>>& ratios) {
    for (const auto& [key, per_rank] : by) {
        if (per_rank.size() < 2)
            continue;
        std::vector<std::pair<int, double>> meds;
        std::vector<double> all;
        for (const auto& [r, durs] : per_rank) {
            auto d = durs;
            const double m = median(d);
            meds.emplace_back(r, m);
            all.push_back(m);
        }
        const double ref = median(all);
        if (ref <= 0.0)
            continue;
        for (const auto& [r, m] : meds)
            ratios[static_cast<std::size_t>(r)].push_back(m / ref);
    }
    std::vector<rank_speed> out;
    for (std::size_t r = 0; r < world; ++r) {
        auto& v = ratios[r];
        if (v.empty())
            continue;
        out.push_back({static_cast<int>(r), median(v), static_cast<std::int64_t>(v.size())});
    }
    return out;
}

} // namespace

straggler_report find_stragglers(const job_trace& job, const step_index& index,
                                 const std::vector<collective_instance>& instances) {
    straggler_report rep;
    const std::size_t world = job.ranks.size();
    const auto& l = job.job_layout;
    std::vector<std::vector<double>> all_ratios(world);
    std::map<std::int64_t, std::vector<const collective_instance*>> by_step;
    for (const auto& inst : instances)
        by_step[inst.step].push_back(&inst);
    std::vector<rank_arrivals> total(world);
    for (std::size_t r = 0; r < world; ++r)
        total[r].rank = static_cast<int>(r);
    for (std::int64_t step : job.steps) {
        step_stragglers st;
        st.step = step;
        std::map<kernel_key, std::map<int, std::vector<double>>> by;
        for (std::size_t r = 0; r < world; ++r) {
            const int dp = l.coords_of(static_cast<int>(r)).dp;
            for (std::uint32_t i : index.events(static_cast<int>(r), step)) {
                const auto& e = job.ranks[r].events[i];
                if (e.kind != runtime::event_kind::compute || e.work == work_class::attention ||
                    e.ph == runtime::phase::optimizer)
                    continue;
                const bool per_mb = e.micro_batch >= 0;
                // A merged record stands for its events at their mean duration.
                by[{e.name, per_mb ? dp : -1, e.micro_batch, per_mb ? e.virtual_stage : -1,
                    per_mb ? static_cast<int>(e.ph) : -1}][static_cast<int>(r)]
                    .push_back(static_cast<double>(e.dur_ns) / e.count);
            }
        }
        std::vector<std::vector<double>> ratios(world);
        st.speed = speeds(by, world, ratios);
        for (std::size_t r = 0; r < world; ++r)
            all_ratios[r].insert(all_ratios[r].end(), ratios[r].begin(), ratios[r].end());
        std::vector<rank_arrivals> arr(world);
        for (std::size_t r = 0; r < world; ++r)
            arr[r].rank = static_cast<int>(r);
        for (const auto* inst : by_step[step]) {
            // A merged record stands for `count` collectives at their mean arrival.
            std::int64_t last = std::numeric_limits<std::int64_t>::min(), sum = 0;
            int who = -1;
            std::int64_t count = 1;
            for (const auto& m : inst->members) {
                const auto& e = job.ranks[static_cast<std::size_t>(m.rank)].events[m.event];
                const std::int64_t arrival = e.mean_start_ns();
                sum += arrival;
                count = e.count;
                if (arrival > last) {
                    last = arrival;
                    who = m.rank;
                }
                arr[static_cast<std::size_t>(m.rank)].collectives += e.count;
            }
            const auto n = static_cast<std::int64_t>(inst->members.size());
            const double others_mean = static_cast<double>(sum - last) / static_cast<double>(n - 1);
            const double wait = (static_cast<double>(last) - others_mean) * 1e-9;
            if (wait > 1e-6) {
                arr[static_cast<std::size_t>(who)].last_arrivals += count;
                arr[static_cast<std::size_t>(who)].wait_imposed_s +=
                    wait * static_cast<double>(count);
            }
        }
        for (std::size_t r = 0; r < world; ++r) {
            if (!job.ranks[r].present)
                continue;
            total[r].last_arrivals += arr[r].last_arrivals;
            total[r].collectives += arr[r].collectives;
            total[r].wait_imposed_s += arr[r].wait_imposed_s;
            st.arrivals.push_back(arr[r]);
        }
        rep.steps.push_back(std::move(st));
    }
    for (std::size_t r = 0; r < world; ++r) {
        if (!job.ranks[r].present)
            continue;
        rep.arrivals.push_back(total[r]);
        auto& v = all_ratios[r];
        if (!v.empty())
            rep.speed.push_back(
                {static_cast<int>(r), median(v), static_cast<std::int64_t>(v.size())});
    }
    return rep;
}

} // namespace wlb::profiler
