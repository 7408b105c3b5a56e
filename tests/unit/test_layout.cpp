#include "base/error.hpp"
#include "runtime/parallel/layout.hpp"

#include <algorithm>
#include <gtest/gtest.h>
#include <random>
#include <set>

using wlb::runtime::axis;
using wlb::runtime::coords;
using wlb::runtime::layout;

namespace {

// Checks every structural property of a layout; returns nothing, fails the test on a breach.
void check_layout_invariants(const layout& l) {
    const int world = l.world_size();
    ASSERT_EQ(world, l.tp() * l.cp() * l.pp() * l.dp());
    // Bijection: rank -> coords -> rank is the identity, and every coordinate tuple is hit once.
    std::set<std::tuple<int, int, int, int>> seen;
    for (int r = 0; r < world; ++r) {
        coords c = l.coords_of(r);
        ASSERT_GE(c.tp, 0);
        ASSERT_LT(c.tp, l.tp());
        ASSERT_GE(c.cp, 0);
        ASSERT_LT(c.cp, l.cp());
        ASSERT_GE(c.pp, 0);
        ASSERT_LT(c.pp, l.pp());
        ASSERT_GE(c.dp, 0);
        ASSERT_LT(c.dp, l.dp());
        ASSERT_EQ(l.rank_of(c), r);
        ASSERT_TRUE(seen.insert({c.tp, c.cp, c.pp, c.dp}).second) << "rank " << r;
    }
    ASSERT_EQ(static_cast<int>(seen.size()), world);
    // Groups: right count and size; each rank in exactly one group of each kind; members
    // differ only on the group's axis and member i has coordinate i on it.
    for (axis a : wlb::runtime::all_axes) {
        auto groups = l.groups(a);
        ASSERT_EQ(static_cast<int>(groups.size()), world / l.degree(a));
        std::vector<int> count(static_cast<std::size_t>(world), 0);
        for (std::size_t g = 0; g < groups.size(); ++g) {
            ASSERT_EQ(static_cast<int>(groups[g].size()), l.degree(a));
            const coords first = l.coords_of(groups[g][0]);
            for (int i = 0; i < l.degree(a); ++i) {
                int r = groups[g][static_cast<std::size_t>(i)];
                ++count[static_cast<std::size_t>(r)];
                coords c = l.coords_of(r);
                EXPECT_EQ(c[a], i);
                for (axis b : wlb::runtime::all_axes) {
                    if (b != a) {
                        EXPECT_EQ(c[b], first[b]);
                    }
                }
                EXPECT_EQ(l.group_index(r, a), static_cast<int>(g));
                EXPECT_EQ(l.group_of(r, a), groups[g]);
            }
            if (g > 0) {
                EXPECT_LT(groups[g - 1][0], groups[g][0]) << "groups ordered by first rank";
            }
        }
        for (int r = 0; r < world; ++r)
            ASSERT_EQ(count[static_cast<std::size_t>(r)], 1) << axis_name(a) << " rank " << r;
    }
}

TEST(Layout, RandomLayoutsInBothOrdersAreBijectionsWithConsistentGroups) {
    std::mt19937 rng(12345);
    std::uniform_int_distribution<int> deg(1, 6);
    for (const char* order : {"tp-cp-pp-dp", "tp-cp-dp-pp", "dp-pp-cp-tp", "cp-tp-dp-pp"}) {
        for (int trial = 0; trial < 60; ++trial) {
            int tp = deg(rng), cp = deg(rng), pp = deg(rng), dp = deg(rng);
            auto l = layout(tp, cp, pp, dp, 1, wlb::runtime::parse_order(order));
            SCOPED_TRACE(l.spec() + " " + order);
            check_layout_invariants(l);
        }
    }
}

// Hand-worked example, tp=2,cp=2,pp=2,dp=2, default order tp-cp-pp-dp (innermost first):
//   rank = tp + 2*cp + 4*pp + 8*dp
//   rank 5  = 1 + 4       -> tp=1 cp=0 pp=1 dp=0
//   rank 11 = 1 + 2 + 8   -> tp=1 cp=1 pp=0 dp=1
//   rank 14 = 2 + 4 + 8   -> tp=0 cp=1 pp=1 dp=1
//   TP group of rank 5: {4, 5}; CP group: {5, 7}; PP group: {1, 5}; DP group: {5, 13}.
TEST(Layout, HandWorkedExampleDefaultOrder) {
    auto l = layout::parse("tp=2,cp=2,pp=2,dp=2");
    EXPECT_EQ(l.coords_of(5), (coords{1, 0, 1, 0}));
    EXPECT_EQ(l.coords_of(11), (coords{1, 1, 0, 1}));
    EXPECT_EQ(l.coords_of(14), (coords{0, 1, 1, 1}));
    EXPECT_EQ(l.group_of(5, axis::tp), (std::vector<int>{4, 5}));
    EXPECT_EQ(l.group_of(5, axis::cp), (std::vector<int>{5, 7}));
    EXPECT_EQ(l.group_of(5, axis::pp), (std::vector<int>{1, 5}));
    EXPECT_EQ(l.group_of(5, axis::dp), (std::vector<int>{5, 13}));
    EXPECT_EQ(l.groups(axis::cp)[0], (std::vector<int>{0, 2}));
    EXPECT_EQ(l.groups(axis::cp)[2], (std::vector<int>{4, 6}));
}

// Same degrees, Megatron order tp-cp-dp-pp:
//   rank = tp + 2*cp + 4*dp + 8*pp
//   rank 5  = 1 + 4       -> tp=1 cp=0 dp=1 pp=0
//   rank 11 = 1 + 2 + 8   -> tp=1 cp=1 dp=0 pp=1
//   rank 14 = 2 + 4 + 8   -> tp=0 cp=1 dp=1 pp=1
//   TP group of rank 5: {4, 5}; CP: {5, 7}; DP: {1, 5}; PP: {5, 13}.
TEST(Layout, HandWorkedExampleMegatronOrder) {
    auto l = layout::parse("tp=2,cp=2,pp=2,dp=2", "tp-cp-dp-pp");
    EXPECT_EQ(l.coords_of(5), (coords{1, 0, 0, 1}));
    EXPECT_EQ(l.coords_of(11), (coords{1, 1, 1, 0}));
    EXPECT_EQ(l.coords_of(14), (coords{0, 1, 1, 1}));
    EXPECT_EQ(l.group_of(5, axis::tp), (std::vector<int>{4, 5}));
    EXPECT_EQ(l.group_of(5, axis::cp), (std::vector<int>{5, 7}));
    EXPECT_EQ(l.group_of(5, axis::dp), (std::vector<int>{1, 5}));
    EXPECT_EQ(l.group_of(5, axis::pp), (std::vector<int>{5, 13}));
}

TEST(Layout, ParseAcceptsAnyAxisOrderMissingAxesAndVpp) {
    auto l = layout::parse("pp=4, tp=8,vpp=2");
    EXPECT_EQ(l.tp(), 8);
    EXPECT_EQ(l.cp(), 1);
    EXPECT_EQ(l.pp(), 4);
    EXPECT_EQ(l.dp(), 1);
    EXPECT_EQ(l.vpp(), 2);
    EXPECT_EQ(l.spec(), "tp=8,cp=1,pp=4,dp=1,vpp=2");
    EXPECT_EQ(layout::parse(l.spec()), l);
    EXPECT_EQ(layout::parse("tp=8,cp=2,pp=4,dp=1").world_size(), 64);
}

struct bad_case {
    const char* spec;
    const char* order;
    const char* message_part;
};

TEST(Layout, BadLayoutsAreRejectedNamingTheBadPart) {
    const bad_case cases[] = {
        {"tp=0,cp=2", "tp-cp-pp-dp", "tp=0 must be a positive integer"},
        {"tp=-2", "tp-cp-pp-dp", "tp=-2 must be a positive integer"},
        {"tp=2.5", "tp-cp-pp-dp", "tp=2.5 is not an integer"},
        {"tp=x", "tp-cp-pp-dp", "tp=x is not an integer"},
        {"tp=", "tp-cp-pp-dp", "tp has no value"},
        {"tp=2,tp=4", "tp-cp-pp-dp", "axis \"tp\" is given twice"},
        {"tp=2,ep=4", "tp-cp-pp-dp", "unknown axis \"ep\""},
        {"tp2", "tp-cp-pp-dp", "\"tp2\" is not of the form axis=N"},
        {"", "tp-cp-pp-dp", "it is empty"},
        {"tp=2,,cp=2", "tp-cp-pp-dp", "empty part"},
        {"tp=2,vpp=2", "tp-cp-pp-dp", "vpp=2 needs pipeline parallelism"},
        {"tp=1024,cp=1024,pp=4", "tp-cp-pp-dp", "over the limit"},
        {"tp=99999999999999999999", "tp-cp-pp-dp", "too large"},
        {"tp=2", "tp-cp-pp", "has 3 axes, not 4"},
        {"tp=2", "tp-cp-pp-pp", "axis \"pp\" appears twice"},
        {"tp=2", "tp-cp-ep-dp", "unknown axis \"ep\""},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(std::string(c.spec) + " / " + c.order);
        try {
            (void)layout::parse(c.spec, c.order);
            ADD_FAILURE() << "accepted";
        } catch (const wlb::input_error& e) {
            EXPECT_NE(std::string(e.what()).find(c.message_part), std::string::npos) << e.what();
            EXPECT_EQ(e.code(), wlb::exit_code::bad_input);
        }
    }
}

} // namespace
