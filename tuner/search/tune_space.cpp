#include "tuner/search/tune_space.hpp"

#include "base/error.hpp"
#include "tuner/cost/memory_model.hpp"
#include "tuner/data/length_summary.hpp"
#include "tuner/data/synthetic_source.hpp"
#include "tuner/search/evaluate.hpp"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

namespace wlb::tuner {
namespace {

std::int64_t round_up(std::int64_t v, std::int64_t g) {
    return (v + g - 1) / g * g;
}

bool contains(const std::vector<std::int64_t>& v, std::int64_t x) {
    return std::find(v.begin(), v.end(), x) != v.end();
}

// Every increasing subset of `values` of size 1..max_size.
void subsets(const std::vector<std::int64_t>& values, int max_size,
             std::vector<std::vector<std::int64_t>>& out) {
    std::vector<std::int64_t> cur;
    auto rec = [&](auto&& self, std::size_t from) -> void {
        if (!cur.empty())
            out.push_back(cur);
        if (static_cast<int>(cur.size()) == max_size)
            return;
        for (std::size_t i = from; i < values.size(); ++i) {
            cur.push_back(values[i]);
            self(self, i + 1);
            cur.pop_back();
        }
    };
    rec(rec, 0);
}

} // namespace

std::string candidate_key(const candidate& c) {
    return to_json(c.packing).dump() + to_json(c.sharding).dump();
}

std::string candidate_name(const candidate& c) {
    return describe_candidate(c.packing, c.sharding);
}

std::vector<std::int64_t> quantile_thresholds(const std::vector<std::int64_t>& sorted_lengths,
                                              std::span<const double> fractions,
                                              std::int64_t context_tokens,
                                              std::int64_t granularity) {
    std::vector<std::int64_t> out;
    if (sorted_lengths.empty())
        return out;
    for (double f : fractions) {
        const auto t = round_up(nearest_rank_percentile(sorted_lengths, f), granularity);
        if (t >= granularity && t < context_tokens && !contains(out, t))
            out.push_back(t);
    }
    std::sort(out.begin(), out.end());
    return out;
}

int search_space::micro_batch_index(int m) const noexcept {
    for (std::size_t i = 0; i < micro_batches.size(); ++i)
        if (micro_batches[i] == m)
            return static_cast<int>(i);
    return -1;
}

std::optional<std::int64_t> search_space::smax_tokens(double factor, int m) const {
    const int i = micro_batch_index(m);
    if (i < 0)
        return std::nullopt;
    const auto t =
        static_cast<std::int64_t>(std::llround(factor * static_cast<double>(context_tokens)));
    if (t < context_tokens || t > smax_cap_tokens[static_cast<std::size_t>(i)])
        return std::nullopt;
    return t;
}

search_space make_search_space(const runtime::layout& l, std::int64_t context_tokens,
                               const std::vector<std::int64_t>& sorted_lengths,
                               const memory_model& memory, bool vary_micro_batches) {
    search_space s;
    s.job_layout = l;
    s.context_tokens = context_tokens;
    s.micro_batches = {l.pp()};
    if (vary_micro_batches)
        s.micro_batches.insert(s.micro_batches.end(), {2 * l.pp(), 4 * l.pp()});
    const std::int64_t replica_budget = static_cast<std::int64_t>(l.pp()) * context_tokens;
    for (int m : s.micro_batches)
        s.smax_cap_tokens.push_back(memory.max_limit_tokens(m, replica_budget));
    s.coarse_thresholds = quantile_thresholds(sorted_lengths, coarse_quantiles, context_tokens);
    s.fine_thresholds = quantile_thresholds(sorted_lengths, fine_quantiles, context_tokens);
    for (auto t : s.coarse_thresholds) // the coarse values are on the fine grid too
        if (!contains(s.fine_thresholds, t))
            s.fine_thresholds.push_back(t);
    std::sort(s.fine_thresholds.begin(), s.fine_thresholds.end());
    s.shardings = sharding_candidates(sorted_lengths, l.cp());
    return s;
}

std::vector<sharding_spec> sharding_candidates(const std::vector<std::int64_t>& sorted_lengths,
                                               int cp) {
    std::vector<sharding_spec> out = {{sharding_policy::per_seq, {}},
                                      {sharding_policy::per_doc, {}},
                                      {sharding_policy::adaptive, {}},
                                      {sharding_policy::hybrid, std::nullopt}};
    if (cp <= 1) // one CP rank: every policy gives the whole micro-batch to it
        return {{sharding_policy::per_seq, {}}};
    std::vector<std::int64_t> seen;
    for (double f : {0.90, 0.99}) {
        if (sorted_lengths.empty())
            break;
        const auto t = round_up(nearest_rank_percentile(sorted_lengths, f), 1024);
        if (t >= 2 * cp && !contains(seen, t)) {
            seen.push_back(t);
            out.push_back({sharding_policy::hybrid, t});
        }
    }
    return out;
}

packing_config make_packing(const search_space& s, packing_policy policy, int micro_batches,
                            std::int64_t smax_tokens, std::vector<std::int64_t> thresholds,
                            int window) {
    packing_config c;
    c.policy = policy;
    c.context_tokens = s.context_tokens;
    c.replicas = s.job_layout.dp();
    c.micro_batches = micro_batches;
    c.smax_tokens = smax_tokens;
    c.thresholds = std::move(thresholds);
    c.window = window;
    if (policy == packing_policy::wlb)
        c.max_delay_steps = s.max_delay_steps;
    if (micro_batches != s.job_layout.pp())
        c.budget_tokens = s.step_tokens();
    validate(c);
    return c;
}

candidate plain_candidate(const search_space& s) {
    return {make_packing(s, packing_policy::plain, s.job_layout.pp(), 0, {}),
            {sharding_policy::per_seq, {}},
            "baseline"};
}

std::vector<candidate> fixed_greedy_candidates(const search_space& s) {
    std::vector<candidate> out;
    for (int w : s.windows)
        out.push_back({make_packing(s, packing_policy::fixed_greedy, s.job_layout.pp(), 0, {}, w),
                       {sharding_policy::per_seq, {}},
                       "baseline"});
    return out;
}

candidate paper_candidate(const search_space& s) {
    return {make_packing(s, packing_policy::wlb, s.job_layout.pp(), default_smax(s.context_tokens),
                         default_thresholds(2, s.context_tokens)),
            {sharding_policy::adaptive, {}},
            "paper"};
}

std::vector<candidate> coarse_packings(const search_space& s, const sharding_spec& sharding) {
    std::vector<std::vector<std::int64_t>> sets;
    subsets(s.coarse_thresholds, s.max_queues, sets);
    std::vector<candidate> out;
    for (int m : s.micro_batches)
        for (double f : s.coarse_smax_factors) {
            const auto smax = s.smax_tokens(f, m);
            if (!smax)
                continue;
            out.push_back({make_packing(s, packing_policy::varlen, m, *smax, {}), sharding, ""});
            for (const auto& t : sets)
                out.push_back({make_packing(s, packing_policy::wlb, m, *smax, t), sharding, ""});
        }
    return out;
}

std::vector<candidate> random_packings(const search_space& s, const sharding_spec& sharding,
                                       int count, std::mt19937_64& rng) {
    std::vector<candidate> out;
    if (s.micro_batches.empty())
        return out;
    for (int tries = 0; static_cast<int>(out.size()) < count && tries < count * 20; ++tries) {
        const int m = s.micro_batches[uniform_below(rng, s.micro_batches.size())];
        const double f = s.fine_smax_factors[uniform_below(rng, s.fine_smax_factors.size())];
        const auto smax = s.smax_tokens(f, m);
        if (!smax)
            continue;
        const auto queues =
            static_cast<int>(uniform_below(rng, static_cast<std::uint64_t>(std::min<std::size_t>(
                                                    s.max_queues, s.fine_thresholds.size())) +
                                                    1));
        std::vector<std::int64_t> t;
        while (static_cast<int>(t.size()) < queues) {
            const auto v = s.fine_thresholds[uniform_below(rng, s.fine_thresholds.size())];
            if (!contains(t, v))
                t.push_back(v);
        }
        std::sort(t.begin(), t.end());
        const auto policy = queues == 0 ? packing_policy::varlen : packing_policy::wlb;
        out.push_back({make_packing(s, policy, m, *smax, std::move(t)), sharding, ""});
    }
    return out;
}

std::vector<candidate> packing_neighbours(const search_space& s, const candidate& c) {
    std::vector<candidate> out;
    const auto& p = c.packing;
    if (p.policy != packing_policy::varlen && p.policy != packing_policy::wlb)
        return out;
    const int m = p.micro_batches;
    const auto smax = p.micro_batch_limit();
    auto add = [&](int mb, std::int64_t limit, std::vector<std::int64_t> t) {
        std::sort(t.begin(), t.end());
        t.erase(std::unique(t.begin(), t.end()), t.end());
        if (static_cast<int>(t.size()) > s.max_queues)
            return;
        if (s.micro_batch_index(mb) < 0 ||
            limit > s.smax_cap_tokens[static_cast<std::size_t>(s.micro_batch_index(mb))])
            return;
        const auto policy = t.empty() ? packing_policy::varlen : packing_policy::wlb;
        out.push_back({make_packing(s, policy, mb, limit, std::move(t)), c.sharding, ""});
    };
    const auto& grid = s.fine_thresholds;
    const auto thresholds =
        p.policy == packing_policy::wlb ? p.thresholds : std::vector<std::int64_t>{};
    // thresholds: move one to the adjacent fine value, remove one, add one
    for (std::size_t i = 0; i < thresholds.size(); ++i) {
        const auto pos = std::lower_bound(grid.begin(), grid.end(), thresholds[i]) - grid.begin();
        for (auto j : {pos - 1, pos + (pos < static_cast<std::ptrdiff_t>(grid.size()) &&
                                               grid[static_cast<std::size_t>(pos)] == thresholds[i]
                                           ? 1
                                           : 0)}) {
            if (j < 0 || j >= static_cast<std::ptrdiff_t>(grid.size()))
                continue;
            auto t = thresholds;
            t[i] = grid[static_cast<std::size_t>(j)];
            if (!std::is_sorted(t.begin(), t.end()) ||
                std::adjacent_find(t.begin(), t.end()) != t.end())
                continue;
            add(m, smax, t);
        }
        auto t = thresholds;
        t.erase(t.begin() + static_cast<std::ptrdiff_t>(i));
        add(m, smax, t);
    }
    if (static_cast<int>(thresholds.size()) < s.max_queues)
        for (auto v : grid)
            if (!contains(thresholds, v)) {
                auto t = thresholds;
                t.push_back(v);
                add(m, smax, t);
            }
    // S_max: the adjacent fine factors
    const double f = static_cast<double>(smax) / static_cast<double>(s.context_tokens);
    const auto& fs = s.fine_smax_factors;
    std::optional<double> below, above;
    for (double x : fs) {
        if (x < f - 1e-9)
            below = x;
        if (x > f + 1e-9 && !above)
            above = x;
    }
    for (auto x : {below, above})
        if (x)
            if (auto t = s.smax_tokens(*x, m))
                add(m, *t, thresholds);
    // micro-batches: the adjacent counts
    const int i = s.micro_batch_index(m);
    for (int j : {i - 1, i + 1})
        if (i >= 0 && j >= 0 && j < static_cast<int>(s.micro_batches.size()))
            add(s.micro_batches[static_cast<std::size_t>(j)], smax, thresholds);
    return out;
}

} // namespace wlb::tuner
