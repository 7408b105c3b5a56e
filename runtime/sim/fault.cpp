#include "runtime/sim/fault.hpp"

#include "base/error.hpp"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <fmt/format.h>

namespace wlb::runtime {
namespace {

[[noreturn]] void bad(std::string_view spec, std::string_view why) {
    throw input_error(fmt::format(
        "bad --inject \"{}\": {} (expected slow-rank=R:F, slow-link=A-B:F, heavy-mb=M[@D]:F or "
        "slow-stage=S:F, with F a factor > 0 such as 1.3)",
        spec, why));
}

int parse_index(std::string_view spec, std::string_view what, std::string_view text) {
    int v = 0;
    const auto* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, v);
    if (text.empty() || ec != std::errc{} || ptr != end || v < 0)
        bad(spec, fmt::format("{} \"{}\" is not a non-negative integer", what, text));
    return v;
}

double parse_factor(std::string_view spec, std::string_view text) {
    double v = 0.0;
    const auto* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, v);
    if (text.empty() || ec != std::errc{} || ptr != end || !std::isfinite(v) || v <= 0.0)
        bad(spec, fmt::format("factor \"{}\" is not a number > 0", text));
    return v;
}

} // namespace

std::string fault::describe() const {
    switch (what) {
    case kind::slow_rank:
        return fmt::format("slow-rank={}:{}", rank, factor);
    case kind::slow_link:
        return fmt::format("slow-link={}-{}:{}", rank, other_rank, factor);
    case kind::heavy_micro_batch:
        return replica < 0 ? fmt::format("heavy-mb={}:{}", micro_batch, factor)
                           : fmt::format("heavy-mb={}@{}:{}", micro_batch, replica, factor);
    case kind::slow_stage:
        break;
    }
    return fmt::format("slow-stage={}:{}", stage, factor);
}

fault parse_fault(std::string_view spec) {
    const auto eq = spec.find('=');
    if (eq == std::string_view::npos)
        bad(spec, "no '='");
    const std::string_view name = spec.substr(0, eq);
    const std::string_view value = spec.substr(eq + 1);
    const auto colon = value.rfind(':');
    if (colon == std::string_view::npos)
        bad(spec, "no ':' before the factor");
    const std::string_view target = value.substr(0, colon);
    fault f;
    f.factor = parse_factor(spec, value.substr(colon + 1));
    if (name == "slow-rank") {
        f.what = fault::kind::slow_rank;
        f.rank = parse_index(spec, "rank", target);
    } else if (name == "slow-link") {
        f.what = fault::kind::slow_link;
        const auto dash = target.find('-');
        if (dash == std::string_view::npos)
            bad(spec, "a link is two ranks A-B");
        f.rank = parse_index(spec, "rank", target.substr(0, dash));
        f.other_rank = parse_index(spec, "rank", target.substr(dash + 1));
        if (f.rank == f.other_rank)
            bad(spec, "a link needs two different ranks");
    } else if (name == "heavy-mb") {
        f.what = fault::kind::heavy_micro_batch;
        const auto at = target.find('@');
        f.micro_batch = parse_index(spec, "micro-batch", target.substr(0, at));
        if (at != std::string_view::npos)
            f.replica = parse_index(spec, "DP replica", target.substr(at + 1));
    } else if (name == "slow-stage") {
        f.what = fault::kind::slow_stage;
        f.stage = parse_index(spec, "stage", target);
    } else {
        bad(spec, fmt::format("unknown fault \"{}\"", name));
    }
    return f;
}

void validate_fault(const fault& f, const layout& l) {
    const std::string spec = f.describe();
    auto check_rank = [&](int r) {
        if (r >= l.world_size())
            throw input_error(fmt::format("--inject {}: rank {} is outside layout {} (ranks 0-{})",
                                          spec, r, l.spec(), l.world_size() - 1));
    };
    switch (f.what) {
    case fault::kind::slow_rank:
        check_rank(f.rank);
        return;
    case fault::kind::slow_link: {
        check_rank(f.rank);
        check_rank(f.other_rank);
        const coords a = l.coords_of(f.rank), b = l.coords_of(f.other_rank);
        int differ = 0;
        for (axis x : all_axes)
            differ += a[x] != b[x] ? 1 : 0;
        const bool same_tp_group = differ == 1 && a.tp != b.tp;
        const bool same_reduce_group = a.tp == b.tp && a.pp == b.pp; // CP or DP x CP
        const int gap = std::abs(a.pp - b.pp);
        const bool pp_neighbours = differ == 1 && (gap == 1 || (l.vpp() > 1 && gap == l.pp() - 1));
        if (!same_tp_group && !same_reduce_group && !pp_neighbours)
            throw input_error(fmt::format(
                "--inject {}: ranks {} and {} share no TP, CP or DP x CP group and are not "
                "neighbouring pipeline stages, so no traffic crosses that link",
                spec, f.rank, f.other_rank));
        return;
    }
    case fault::kind::heavy_micro_batch:
        if (f.replica >= l.dp())
            throw input_error(fmt::format("--inject {}: DP replica {} is outside dp={}", spec,
                                          f.replica, l.dp()));
        return;
    case fault::kind::slow_stage:
        if (f.stage >= l.pp())
            throw input_error(
                fmt::format("--inject {}: stage {} is outside pp={}", spec, f.stage, l.pp()));
        return;
    }
}

} // namespace wlb::runtime
