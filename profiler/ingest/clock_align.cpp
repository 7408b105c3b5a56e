#include "profiler/ingest/clock_align.hpp"

#include "base/error.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fmt/format.h>
#include <limits>
#include <map>
#include <queue>
#include <tuple>

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

// Point-to-point transfers between pipeline neighbours: a receive cannot end before its send
// ends, and ends with it when the receiver was already waiting, so over many transfers
// min(recv end - send end) is the clocks' difference. Sends of stage p go forward to
// (p + 1) mod P and backward to (p - 1) mod P; the k-th send of a (step, micro-batch, pass)
// matches the receiver's k-th receive of it. Returns, per rank pair (x, y), o_y - o_x.
std::map<std::pair<int, int>, std::int64_t> p2p_edges(const job_trace& job) {
    using runtime::event_kind;
    using runtime::phase;
    const auto& l = job.job_layout;
    const int pp = l.pp();
    std::map<std::pair<int, int>, std::int64_t> out;
    if (pp < 2)
        return out;
    using key =
        std::tuple<int, int, std::int32_t, int, int, std::int64_t>; // from, to, step, mb, ph, k
    std::map<key, std::int64_t> sends, recvs;
    for (std::size_t r = 0; r < job.ranks.size(); ++r) {
        const auto c = l.coords_of(static_cast<int>(r));
        std::map<std::tuple<std::int32_t, int, int, int>, std::int64_t> seen;
        for (const auto& e : job.ranks[r].events) {
            if ((e.kind != event_kind::send && e.kind != event_kind::recv) || e.micro_batch < 0 ||
                (e.ph != phase::fwd && e.ph != phase::bwd))
                continue;
            const bool fwd = e.ph == phase::fwd;
            const bool send = e.kind == event_kind::send;
            auto other = c;
            other.pp = (c.pp + ((fwd == send) ? 1 : pp - 1)) % pp;
            const int o = l.rank_of(other);
            const int from = send ? static_cast<int>(r) : o, to = send ? o : static_cast<int>(r);
            const auto k = seen[{e.step, static_cast<int>(e.micro_batch), static_cast<int>(e.ph),
                                 send ? 1 : 0}]++;
            (send ? sends : recvs)[{from, to, e.step, e.micro_batch, static_cast<int>(e.ph), k}] =
                e.mean_end_ns();
        }
    }
    std::map<std::pair<int, int>, std::int64_t> min_diff; // (from, to) -> min(recv - send)
    for (const auto& [k, send_end] : sends) {
        auto it = recvs.find(k);
        if (it == recvs.end())
            continue;
        const std::pair<int, int> pr{std::get<0>(k), std::get<1>(k)};
        const std::int64_t d = it->second - send_end;
        auto [m, fresh] = min_diff.try_emplace(pr, d);
        if (!fresh)
            m->second = std::min(m->second, d);
    }
    for (const auto& [pr, d] : min_diff) {
        const auto [a, b] = pr;
        // o_b - o_a >= -d (a -> b); from b -> a: o_b - o_a <= d'.
        const std::pair<int, int> key_ab{std::min(a, b), std::max(a, b)};
        if (out.count(key_ab))
            continue;
        auto back = min_diff.find({b, a});
        std::int64_t diff = -d; // o_b - o_a
        if (back != min_diff.end())
            diff = (-d + back->second) / 2;
        out[key_ab] = a < b ? diff : -diff;
    }
    return out;
}

} // namespace

clock_alignment align_clocks(job_trace& job, const std::vector<collective_instance>& instances,
                             const clock_option& option) {
    clock_alignment a;
    const std::size_t world = job.ranks.size();
    a.offset_ns.assign(world, 0);
    auto end_of = [&](const collective_member& m) {
        return job.ranks[static_cast<std::size_t>(m.rank)].events[m.event].mean_end_ns();
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
        const auto p2p = p2p_edges(job);
        std::vector<char> done(world, 0);
        std::queue<int> q;
        auto spread = [&] {
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
        };
        // Collective groups first; then point-to-point transfers join what collectives left
        // apart (pipeline stages often share no collective); what neither reaches stays.
        int first_root = -1;
        for (std::size_t root = 0; root < world; ++root) {
            if (!job.ranks[root].present || done[root])
                continue;
            if (first_root < 0)
                first_root = static_cast<int>(root);
            else
                a.unaligned_ranks.push_back(static_cast<int>(root));
            done[root] = 1;
            q.push(static_cast<int>(root));
            spread();
            for (bool joined = true; joined;) {
                joined = false;
                for (const auto& [pair, d] : p2p) {
                    const auto [x, y] = pair; // o_y - o_x = d
                    const bool dx = done[static_cast<std::size_t>(x)] != 0;
                    const bool dy = done[static_cast<std::size_t>(y)] != 0;
                    if (dx == dy)
                        continue;
                    if (dx)
                        a.offset_ns[static_cast<std::size_t>(y)] =
                            a.offset_ns[static_cast<std::size_t>(x)] + d;
                    else
                        a.offset_ns[static_cast<std::size_t>(x)] =
                            a.offset_ns[static_cast<std::size_t>(y)] - d;
                    const int fresh = dx ? y : x;
                    done[static_cast<std::size_t>(fresh)] = 1;
                    q.push(fresh);
                    spread();
                    ++a.p2p_links;
                    joined = true;
                }
            }
        }
        if (!a.unaligned_ranks.empty())
            job.warn("clock alignment",
                     fmt::format("{} groups of ranks share neither a matched collective nor a "
                                 "matched point-to-point transfer with the ranks of rank {} "
                                 "(first: rank {}); their clocks are kept as recorded",
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
        for (auto& sm : rt.summaries) {
            sm.first_ns += rt.clock_offset_ns;
            sm.last_ns += rt.clock_offset_ns;
            sm.busy_first_ns += rt.clock_offset_ns;
            sm.busy_last_ns += rt.clock_offset_ns;
        }
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

clock_option parse_clock_option(std::string_view text) {
    clock_option c;
    if (text.empty() || text == "auto")
        return c;
    if (text == "none") {
        c.how = clock_option::mode::none;
        return c;
    }
    c.how = clock_option::mode::given;
    std::size_t pos = 0;
    while (pos <= text.size()) {
        const auto comma = text.find(',', pos);
        const std::string_view part = text.substr(
            pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
        const auto eq = part.find('=');
        auto bad = [&](std::string_view why) {
            throw usage_error(fmt::format("--clock-offset \"{}\": {} in \"{}\" (expected auto, "
                                          "none or R=NS[,R=NS...], NS in ns or with a unit: "
                                          "3=-1.5ms)",
                                          text, why, part));
        };
        if (eq == std::string_view::npos)
            bad("no '='");
        int rank = 0;
        const auto rs = part.substr(0, eq);
        if (std::from_chars(rs.data(), rs.data() + rs.size(), rank).ptr != rs.data() + rs.size() ||
            rs.empty() || rank < 0)
            bad("the rank is not a non-negative integer");
        std::string_view v = part.substr(eq + 1);
        double scale = 1.0;
        for (auto [suffix, s] :
             {std::pair<std::string_view, double>{"ns", 1.0}, {"us", 1e3}, {"ms", 1e6}, {"s", 1e9}})
            if (v.ends_with(suffix)) {
                v.remove_suffix(suffix.size());
                scale = s;
                break;
            }
        if (!v.empty() && v.front() == '+')
            v.remove_prefix(1);
        double x = 0.0;
        auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
        if (v.empty() || ec != std::errc{} || p != v.data() + v.size() || !std::isfinite(x))
            bad("the offset is not a number");
        c.offsets_ns[rank] = std::llround(x * scale);
        if (comma == std::string_view::npos)
            break;
        pos = comma + 1;
    }
    return c;
}

} // namespace wlb::profiler
