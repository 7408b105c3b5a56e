// End-to-end: the wlbtune executable's layout command, its exit codes and its messages.
#include "support/cli_runner.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using wlb::test::run_wlbtune;

namespace {

TEST(CliLayout, DefaultPaperLayoutPrintsTheMappingAndGroups) {
    auto r = run_wlbtune("layout --layout tp=8,cp=2,pp=4,dp=1");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("world size 64"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("cp groups: 32 of 2 ranks"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("pp groups: 16 of 4 ranks"), std::string::npos) << r.out;
}

TEST(CliLayout, JsonIsVersionedAndMatchesTheMapping) {
    auto r = run_wlbtune("layout --layout tp=2,cp=2,pp=2,dp=2 --order tp-cp-dp-pp --json");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j.at("schema"), "wlbtune.layout/1");
    EXPECT_EQ(j.at("layout").at("world_size"), 16);
    EXPECT_EQ(j.at("layout").at("order"), "tp-cp-dp-pp");
    // rank 11 = 1 + 2 + 8 in tp-cp-dp-pp: tp=1 cp=1 dp=0 pp=1
    const auto& r11 = j.at("ranks").at(11);
    EXPECT_EQ(r11.at("tp"), 1);
    EXPECT_EQ(r11.at("cp"), 1);
    EXPECT_EQ(r11.at("dp"), 0);
    EXPECT_EQ(r11.at("pp"), 1);
    EXPECT_EQ(j.at("groups").at("pp").at(0), (std::vector<int>{0, 8}));
    EXPECT_FALSE(j.at("command_line").empty());
}

struct bad_cli_case {
    const char* args;
    int exit_code;
    const char* message_part;
};

TEST(CliLayout, BadLayoutsExitWithBadInputAndNameTheBadPart) {
    const bad_cli_case cases[] = {
        {"layout --layout tp=0,cp=2", 3, "tp=0 must be a positive integer"},
        {"layout --layout tp=-1", 3, "tp=-1 must be a positive integer"},
        {"layout --layout tp=1.5", 3, "tp=1.5 is not an integer"},
        {"layout --layout tp=2,tp=2", 3, "axis \"tp\" is given twice"},
        {"layout --layout tp=2,xp=2", 3, "unknown axis \"xp\""},
        {"layout --layout tp=2 --order tp-cp-pp", 3, "has 3 axes, not 4"},
        {"layout --layout tp=2 --order tp-tp-pp-dp", 3, "axis \"tp\" appears twice"},
        {"layout --layout tp=8,cp=2,pp=4,dp=1 --world-size 32", 3,
         "has world size 64 (tp*cp*pp*dp) but --world-size is 32"},
        {"layout --no-such-flag", 2, "no-such-flag"},
        {"no-such-command", 2, "no-such-command"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.args);
        auto r = run_wlbtune(c.args);
        EXPECT_EQ(r.exit_code, c.exit_code) << r.err;
        EXPECT_NE(r.err.find(c.message_part), std::string::npos) << r.err;
    }
}

TEST(CliLayout, ErrorsAreJsonWhenJsonIsAsked) {
    auto r = run_wlbtune("layout --layout tp=0 --json");
    EXPECT_EQ(r.exit_code, 3);
    auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j.at("schema"), "wlbtune.error/1");
    EXPECT_EQ(j.at("error").at("kind"), "bad_input");
    EXPECT_EQ(j.at("error").at("exit_code"), 3);
    EXPECT_NE(j.at("error").at("message").get<std::string>().find("tp=0"), std::string::npos);
}

TEST(CliLayout, VersionAndHelp) {
    auto v = run_wlbtune("--version");
    ASSERT_EQ(v.exit_code, 0) << v.err;
    EXPECT_NE(v.out.find("wlbtune "), std::string::npos);
    EXPECT_NE(v.out.find("CUDA:"), std::string::npos);
    EXPECT_NE(v.out.find("MPI:"), std::string::npos);
    auto h = run_wlbtune("--help");
    EXPECT_EQ(h.exit_code, 0);
    EXPECT_NE(h.out.find("layout"), std::string::npos);
    auto lh = run_wlbtune("layout --help");
    EXPECT_EQ(lh.exit_code, 0);
    EXPECT_NE(lh.out.find("--order"), std::string::npos);
}

} // namespace
