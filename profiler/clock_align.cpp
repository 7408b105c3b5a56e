#include "profiler/clock_align.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <limits>
#include <map>
#include <queue>

namespace wlb::profiler {
namespace {

std::int64_t median_of(std::vector<std::int64_t>& v) {
    if (v.empty())
        return 0;
    auto mid = v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2);
    std::nth_element(v.begin(), mid, v.end());
    return *mid;
}

constexpr std::size_t max_samples_per_pair = 4096;

} // namespace

clock_alignment align_clocks(job_trace& job, const std::vector<collective_instance>& instances,
                             const clock_option& option) {
    clock_alignment a;
    const std::size_t world = job.ranks.size();
    a.offset_ns.assign(world, 0);
    auto end_of = [&](const collective_member& m) {
        return job.ranks[static_cast<std::size_t>(m.rank)].events[m.event].end_ns();
    };
    if (option.how == clock_option::mode::given) {
        a.method = "given offsets";
        for (const auto& [r, off] : option.offsets_ns) {
            if (r < 0 || static_cast<std::size_t>(r) >= world) {
                job.warn("--clock-offset",
                         fmt::format("rank {} is outside the job ({} ranks); ignored", r, world));
                continue;
            }
            a.offset_ns[static_cast<std::size_t>(r)] = off;
        }
    } else if (option.how == clock_option::mode::none) {
        a.method = "none";
    } else {
        a.method = "collective ends";
        // Differences of ends between neighbouring members of each instance.
        std::map<std::pair<int, int>, std::vector<std::int64_t>> diffs;
        for (const auto& inst : instances) {
            ++a.matched_collectives;
            for (std::size_t k = 1; k < inst.members.size(); ++k) {
                const auto& x = inst.members[k - 1];
                const auto& y = inst.members[k];
                auto& v = diffs[{x.rank, y.rank}];
                if (v.size() < max_samples_per_pair)
                    v.push_back(end_of(x) - end_of(y));
            }
        }
        std::vector<std::vector<std::pair<int, std::int64_t>>> adj(world);
        for (auto& [pair, v] : diffs) {
            const std::int64_t d = median_of(v); // end_a - end_b
            adj[static_cast<std::size_t>(pair.first)].emplace_back(pair.second, d);
            adj[static_cast<std::size_t>(pair.second)].emplace_back(pair.first, -d);
        }
        std::vector<char> done(world, 0);
        bool first_component = true;
        int first_root = -1;
        for (std::size_t root = 0; root < world; ++root) {
            if (!job.ranks[root].present || done[root])
                continue;
            if (adj[root].empty()) {
                if (instances.empty())
                    continue;
                a.unaligned_ranks.push_back(static_cast<int>(root));
                continue;
            }
            if (!first_component)
                a.unaligned_ranks.push_back(static_cast<int>(root));
            else
                first_root = static_cast<int>(root);
            first_component = false;
            std::queue<int> q;
            q.push(static_cast<int>(root));
            done[root] = 1;
            while (!q.empty()) {
                const int x = q.front();
                q.pop();
                for (auto [y, d] : adj[static_cast<std::size_t>(x)]) {
                    if (done[static_cast<std::size_t>(y)])
                        continue;
                    // end_x + o_x = end_y + o_y  =>  o_y = o_x + (end_x - end_y)
                    a.offset_ns[static_cast<std::size_t>(y)] =
                        a.offset_ns[static_cast<std::size_t>(x)] + d;
                    done[static_cast<std::size_t>(y)] = 1;
                    q.push(y);
                }
            }
        }
        if (!a.unaligned_ranks.empty())
            job.warn("clock alignment",
                     fmt::format("{} groups of ranks share no matched collective with the ranks "
                                 "of rank {} (first: rank {}; pipeline stages may meet only in "
                                 "point-to-point transfers); their clocks are kept as recorded",
                                 a.unaligned_ranks.size(), first_root, a.unaligned_ranks.front()));
    }
    std::int64_t origin = std::numeric_limits<std::int64_t>::max();
    for (std::size_t r = 0; r < world; ++r) {
        auto& rt = job.ranks[r];
        rt.clock_offset_ns = a.offset_ns[r];
        a.max_abs_offset_ns =
            std::max(a.max_abs_offset_ns, a.offset_ns[r] < 0 ? -a.offset_ns[r] : a.offset_ns[r]);
        for (auto& e : rt.events) {
            e.start_ns += a.offset_ns[r];
            origin = std::min(origin, e.start_ns);
        }
    }
    if (origin == std::numeric_limits<std::int64_t>::max())
        origin = 0;
    for (auto& rt : job.ranks) {
        rt.clock_offset_ns -= origin;
        for (auto& e : rt.events)
            e.start_ns -= origin;
    }
    std::vector<std::int64_t> spread;
    spread.reserve(instances.size());
    for (const auto& inst : instances) {
        std::int64_t lo = std::numeric_limits<std::int64_t>::max(), hi = -lo;
        for (const auto& m : inst.members) {
            lo = std::min(lo, end_of(m));
            hi = std::max(hi, end_of(m));
        }
        spread.push_back(hi - lo);
    }
    if (!spread.empty()) {
        std::sort(spread.begin(), spread.end());
        a.residual_median_ns = spread[spread.size() / 2];
        a.residual_p90_ns = spread[std::min(spread.size() - 1, spread.size() * 9 / 10)];
    }
    return a;
}

} // namespace wlb::profiler
