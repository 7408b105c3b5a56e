// 4D-parallel layout: tensor (tp), context (cp), pipeline (pp) and data (dp) parallel degrees,
// an optional number of virtual pipeline stages (vpp), and the order in which the axes are laid
// over global ranks.
//
// The order lists the axes innermost first: with the default "tp-cp-pp-dp" (Llama 3, WLB-LLM),
//     rank = tp + TP * (cp + CP * (pp + PP * dp)),
// so TP peers are adjacent ranks (one node) and DP replicas are the outermost blocks. Megatron's
// "tp-cp-dp-pp" puts DP inside PP. Any permutation of the four axes is accepted.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace wlb::runtime {

enum class axis : std::uint8_t { tp = 0, cp = 1, pp = 2, dp = 3 };
inline constexpr std::array<axis, 4> all_axes = {axis::tp, axis::cp, axis::pp, axis::dp};

/// "tp", "cp", "pp", "dp".
std::string_view axis_name(axis a) noexcept;

/// A rank's position along each axis, each in [0, degree).
struct coords {
    int tp = 0;
    int cp = 0;
    int pp = 0;
    int dp = 0;

    [[nodiscard]] int& operator[](axis a) noexcept;
    [[nodiscard]] int operator[](axis a) const noexcept;
    friend bool operator==(const coords&, const coords&) = default;
};

/// Largest world size accepted: beyond it a layout is almost certainly a typo.
inline constexpr std::int64_t max_world_size = 1 << 20;

class layout {
public:
    static constexpr std::string_view default_order = "tp-cp-pp-dp";

    /// Parses "tp=8,cp=2,pp=4,dp=1[,vpp=2]" (axes in any order; a missing axis has degree 1)
    /// and an order such as "tp-cp-pp-dp". Throws wlb::input_error naming the bad part.
    static layout parse(std::string_view spec, std::string_view order = default_order);

    /// Builds from degrees; throws wlb::input_error when a degree is < 1 or the world is too big.
    layout(int tp, int cp, int pp, int dp, int vpp = 1,
           std::array<axis, 4> order = {axis::tp, axis::cp, axis::pp, axis::dp});

    [[nodiscard]] int degree(axis a) const noexcept { return m_degree[static_cast<int>(a)]; }
    [[nodiscard]] int tp() const noexcept { return degree(axis::tp); }
    [[nodiscard]] int cp() const noexcept { return degree(axis::cp); }
    [[nodiscard]] int pp() const noexcept { return degree(axis::pp); }
    [[nodiscard]] int dp() const noexcept { return degree(axis::dp); }
    [[nodiscard]] int vpp() const noexcept { return m_vpp; }
    [[nodiscard]] int world_size() const noexcept { return m_world; }
    [[nodiscard]] const std::array<axis, 4>& order() const noexcept { return m_order; }

    /// Global rank of a coordinate; precondition: every coordinate in range.
    [[nodiscard]] int rank_of(const coords& c) const;
    /// Coordinates of a global rank; precondition: 0 <= rank < world_size().
    [[nodiscard]] coords coords_of(int rank) const;

    /// Number of groups of kind `a` (world_size / degree(a)).
    [[nodiscard]] int group_count(axis a) const noexcept { return m_world / degree(a); }
    /// Index in [0, group_count(a)) of the group of kind `a` that holds `rank`. Groups are
    /// numbered by the rank of their first member, ascending.
    [[nodiscard]] int group_index(int rank, axis a) const;
    /// Members of the group of kind `a` that holds `rank`, ordered by their coordinate on `a`
    /// (member i has coordinate i), so member i of a CP group is CP rank i.
    [[nodiscard]] std::vector<int> group_of(int rank, axis a) const;
    /// Every group of kind `a`, in group_index order.
    [[nodiscard]] std::vector<std::vector<int>> groups(axis a) const;

    /// "tp=8,cp=2,pp=4,dp=1" (plus ",vpp=V" when V > 1), in canonical axis order.
    [[nodiscard]] std::string spec() const;
    /// "tp-cp-pp-dp".
    [[nodiscard]] std::string order_string() const;

    friend bool operator==(const layout&, const layout&) = default;

private:
    std::array<int, 4> m_degree{}; // indexed by axis
    std::array<int, 4> m_stride{}; // indexed by axis: rank stride of one step along the axis
    std::array<axis, 4> m_order{}; // innermost first
    int m_vpp = 1;
    int m_world = 1;
};

/// Parses an order "tp-cp-pp-dp" (any permutation; separators '-' or ','). Throws
/// wlb::input_error naming the bad part.
std::array<axis, 4> parse_order(std::string_view order);

/// Ranks in the order given as runs: "0-3, 7, 9-10" (sort them first for the shortest text).
std::string rank_ranges(const std::vector<int>& ranks);

} // namespace wlb::runtime
