#include "tuner/search/compare_set.hpp"

namespace wlb::tuner {
namespace {

bool same(const candidate& a, const packing_config& p, const sharding_spec& s) {
    return describe_candidate(a.packing, a.sharding) == describe_candidate(p, s) &&
           a.packing.micro_batches == p.micro_batches;
}

} // namespace

std::vector<candidate> comparison_candidates(const packing_knobs& knobs,
                                             const sharding_spec& chosen,
                                             const runtime::layout& l) {
    auto with_policy = [&](const char* policy) {
        auto k = knobs;
        k.policy = policy;
        if (k.policy != "wlb")
            k.max_delay = 0; // the bound is wlb's
        return make_packing_config(k, l);
    };
    auto sharding = [&](sharding_policy p) {
        sharding_spec s;
        s.policy = p;
        if (p == sharding_policy::hybrid && chosen.policy == sharding_policy::hybrid)
            s = chosen; // the user's hybrid threshold and token bound
        return s;
    };
    const auto plain = with_policy("plain");
    const auto wlb = with_policy("wlb");
    std::vector<candidate> out = {
        {plain, sharding(sharding_policy::per_seq), "baseline"},
        {with_policy("plain-whole"), sharding(sharding_policy::per_seq), "whole documents"},
        {plain, sharding(sharding_policy::adaptive), "sharding only"},
        {wlb, sharding(sharding_policy::per_seq), "packing only"},
        {wlb, sharding(sharding_policy::adaptive), "both"},
        {wlb, sharding(sharding_policy::per_doc), ""},
        {wlb, sharding(sharding_policy::hybrid), ""},
        {with_policy("fixed-greedy"), sharding(sharding_policy::adaptive), ""},
    };
    const auto mine = make_packing_config(knobs, l);
    for (auto& c : out)
        if (same(c, mine, chosen)) {
            c.role += c.role.empty() ? "chosen" : ", chosen";
            c.chosen = true;
            return out;
        }
    out.push_back({mine, chosen, "chosen", true});
    return out;
}

} // namespace wlb::tuner
