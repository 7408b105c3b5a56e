#include "runtime/parallel/layout.hpp"

#include "base/error.hpp"

#include <charconv>
#include <fmt/format.h>
#include <optional>

namespace wlb::runtime {
namespace {

std::optional<axis> axis_from_name(std::string_view name) {
    for (axis a : all_axes)
        if (axis_name(a) == name)
            return a;
    return std::nullopt;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

std::vector<std::string_view> split(std::string_view s, std::string_view separators) {
    std::vector<std::string_view> parts;
    std::size_t begin = 0;
    for (std::size_t i = 0; i <= s.size(); ++i) {
        if (i == s.size() || separators.find(s[i]) != std::string_view::npos) {
            parts.push_back(trim(s.substr(begin, i - begin)));
            begin = i + 1;
        }
    }
    return parts;
}

[[noreturn]] void bad_layout(std::string_view spec, std::string_view why) {
    throw input_error(fmt::format("bad layout \"{}\": {}", spec, why));
}

int parse_degree(std::string_view spec, std::string_view name, std::string_view value) {
    if (value.empty())
        bad_layout(spec, fmt::format("{} has no value (expected {}=N with N a positive integer)",
                                     name, name));
    long long v = 0;
    const auto* end = value.data() + value.size();
    auto [ptr, ec] = std::from_chars(value.data(), end, v);
    if (ec == std::errc::result_out_of_range)
        bad_layout(spec, fmt::format("{}={} is too large", name, value));
    if (ec != std::errc{} || ptr != end)
        bad_layout(spec, fmt::format("{}={} is not an integer (expected a positive integer)", name,
                                     value));
    if (v < 1)
        bad_layout(spec, fmt::format("{}={} must be a positive integer (at least 1)", name, value));
    if (v > max_world_size)
        bad_layout(spec,
                   fmt::format("{}={} is too large (at most {})", name, value, max_world_size));
    return static_cast<int>(v);
}

} // namespace

std::string_view axis_name(axis a) noexcept {
    switch (a) {
    case axis::tp:
        return "tp";
    case axis::cp:
        return "cp";
    case axis::pp:
        return "pp";
    case axis::dp:
        break;
    }
    return "dp";
}

int& coords::operator[](axis a) noexcept {
    switch (a) {
    case axis::tp:
        return tp;
    case axis::cp:
        return cp;
    case axis::pp:
        return pp;
    case axis::dp:
        break;
    }
    return dp;
}

int coords::operator[](axis a) const noexcept {
    return const_cast<coords&>(*this)[a];
}

std::array<axis, 4> parse_order(std::string_view order) {
    const auto parts = split(order, "-,");
    auto bad = [&](std::string_view why) {
        throw input_error(
            fmt::format("bad order \"{}\": {} (expected a permutation of tp, cp, pp, dp such as "
                        "tp-cp-pp-dp or tp-cp-dp-pp, innermost first)",
                        order, why));
    };
    if (parts.size() != 4)
        bad(fmt::format("it has {} axes, not 4", parts.size()));
    std::array<axis, 4> result{};
    std::array<bool, 4> seen{};
    for (std::size_t i = 0; i < 4; ++i) {
        auto a = axis_from_name(parts[i]);
        if (!a)
            bad(fmt::format("unknown axis \"{}\"", parts[i]));
        if (seen[static_cast<int>(*a)])
            bad(fmt::format("axis \"{}\" appears twice", parts[i]));
        seen[static_cast<int>(*a)] = true;
        result[i] = *a;
    }
    return result;
}

layout layout::parse(std::string_view spec, std::string_view order) {
    const auto ord = parse_order(order);
    if (trim(spec).empty())
        bad_layout(spec, "it is empty (expected tp=N,cp=N,pp=N,dp=N[,vpp=N])");
    std::array<int, 4> degree = {1, 1, 1, 1};
    std::array<bool, 4> seen{};
    std::optional<int> vpp;
    for (auto part : split(spec, ",")) {
        if (part.empty())
            bad_layout(spec, "it has an empty part (two commas in a row, or a trailing comma)");
        auto eq = part.find('=');
        if (eq == std::string_view::npos)
            bad_layout(spec, fmt::format("\"{}\" is not of the form axis=N", part));
        auto name = trim(part.substr(0, eq));
        auto value = trim(part.substr(eq + 1));
        if (name == "vpp") {
            if (vpp)
                bad_layout(spec, "axis \"vpp\" is given twice");
            vpp = parse_degree(spec, name, value);
            continue;
        }
        auto a = axis_from_name(name);
        if (!a)
            bad_layout(spec, fmt::format("unknown axis \"{}\" (known: tp, cp, pp, dp, vpp)", name));
        if (seen[static_cast<int>(*a)])
            bad_layout(spec, fmt::format("axis \"{}\" is given twice", name));
        seen[static_cast<int>(*a)] = true;
        degree[static_cast<int>(*a)] = parse_degree(spec, name, value);
    }
    if (vpp && *vpp > 1 && degree[static_cast<int>(axis::pp)] < 2)
        bad_layout(spec, fmt::format("vpp={} needs pipeline parallelism (pp >= 2)", *vpp));
    try {
        return layout(degree[0], degree[1], degree[2], degree[3], vpp.value_or(1), ord);
    } catch (const input_error& e) {
        bad_layout(spec, e.what());
    }
}

layout::layout(int tp, int cp, int pp, int dp, int vpp, std::array<axis, 4> order)
    : m_degree{tp, cp, pp, dp}, m_order(order), m_vpp(vpp) {
    std::int64_t world = 1;
    for (axis a : all_axes) {
        if (degree(a) < 1)
            throw input_error(
                fmt::format("{} = {} must be a positive integer", axis_name(a), degree(a)));
        world *= degree(a);
        if (world > max_world_size)
            throw input_error(fmt::format("world size tp*cp*pp*dp is over the limit of {} ranks",
                                          max_world_size));
    }
    if (vpp < 1)
        throw input_error(fmt::format("vpp = {} must be a positive integer", vpp));
    std::array<bool, 4> seen{};
    for (axis a : order) {
        if (seen[static_cast<int>(a)])
            throw input_error(fmt::format("order repeats axis {}", axis_name(a)));
        seen[static_cast<int>(a)] = true;
    }
    m_world = static_cast<int>(world);
    int stride = 1;
    for (axis a : m_order) {
        m_stride[static_cast<int>(a)] = stride;
        stride *= degree(a);
    }
}

int layout::rank_of(const coords& c) const {
    int rank = 0;
    for (axis a : all_axes) {
        WLB_EXPECTS(c[a] >= 0 && c[a] < degree(a), "{} coordinate {} out of range [0, {})",
                    axis_name(a), c[a], degree(a));
        rank += c[a] * m_stride[static_cast<int>(a)];
    }
    return rank;
}

coords layout::coords_of(int rank) const {
    WLB_EXPECTS(rank >= 0 && rank < m_world, "rank {} out of range [0, {})", rank, m_world);
    coords c;
    for (axis a : m_order) {
        c[a] = rank % degree(a);
        rank /= degree(a);
    }
    return c;
}

int layout::group_index(int rank, axis a) const {
    // Drop the coordinate on `a` and number the rest in layout order (innermost first): this
    // numbers groups by the rank of their first member, ascending.
    const coords c = coords_of(rank);
    int index = 0;
    int stride = 1;
    for (axis b : m_order) {
        if (b == a)
            continue;
        index += c[b] * stride;
        stride *= degree(b);
    }
    return index;
}

std::vector<int> layout::group_of(int rank, axis a) const {
    coords c = coords_of(rank);
    std::vector<int> members(static_cast<std::size_t>(degree(a)));
    for (int i = 0; i < degree(a); ++i) {
        c[a] = i;
        members[static_cast<std::size_t>(i)] = rank_of(c);
    }
    return members;
}

std::vector<std::vector<int>> layout::groups(axis a) const {
    std::vector<std::vector<int>> result(static_cast<std::size_t>(group_count(a)));
    for (int r = 0; r < m_world; ++r) {
        if (coords_of(r)[a] == 0)
            result[static_cast<std::size_t>(group_index(r, a))] = group_of(r, a);
    }
    return result;
}

std::string layout::spec() const {
    std::string s = fmt::format("tp={},cp={},pp={},dp={}", tp(), cp(), pp(), dp());
    if (m_vpp > 1)
        s += fmt::format(",vpp={}", m_vpp);
    return s;
}

std::string layout::order_string() const {
    return fmt::format("{}-{}-{}-{}", axis_name(m_order[0]), axis_name(m_order[1]),
                       axis_name(m_order[2]), axis_name(m_order[3]));
}

std::string rank_ranges(const std::vector<int>& ranks) {
    std::string out;
    for (std::size_t i = 0; i < ranks.size();) {
        std::size_t j = i;
        while (j + 1 < ranks.size() && ranks[j + 1] == ranks[j] + 1)
            ++j;
        if (!out.empty())
            out += ", ";
        out += i == j ? fmt::format("{}", ranks[i]) : fmt::format("{}-{}", ranks[i], ranks[j]);
        i = j + 1;
    }
    return out;
}

} // namespace wlb::runtime
