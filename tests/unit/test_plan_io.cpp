// Plan files (tuner/plan/plan_io.hpp): write -> read round trips (plain and gzip), and every kind
// of malformed or truncated file gives an error naming the file and the line.
#include "base/error.hpp"
#include "support/cli_runner.hpp"
#include "tuner/plan/plan_io.hpp"

#include <fstream>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <random>

using namespace wlb;
using wlb::test::temp_dir;

namespace {

tuner::plan_header make_header(int dp = 2, int micro_batches = 3) {
    tuner::plan_header h;
    h.layout_spec = fmt::format("tp=2,cp=2,pp={},dp={}", micro_batches, dp);
    h.context_tokens = 1000;
    h.model = runtime::model_preset("7b");
    h.hardware = tuner::hardware_preset("h100-sxm");
    h.data = "memory";
    h.packing.policy = tuner::packing_policy::wlb;
    h.packing.context_tokens = 1000;
    h.packing.replicas = dp;
    h.packing.micro_batches = micro_batches;
    h.packing.smax_tokens = 1500;
    h.packing.thresholds = {300, 600};
    return h;
}

// Random steps that respect the header's shape and limits.
std::vector<runtime::global_batch> random_steps(const tuner::plan_header& h, int steps,
                                                std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<runtime::global_batch> out;
    std::int64_t id = 0;
    for (int s = 0; s < steps; ++s) {
        runtime::global_batch b;
        b.step = s;
        b.replicas.resize(static_cast<std::size_t>(h.packing.replicas));
        for (auto& r : b.replicas) {
            r.micro_batches.resize(static_cast<std::size_t>(h.packing.micro_batches));
            for (auto& mb : r.micro_batches) {
                std::int64_t room = h.packing.micro_batch_limit();
                const auto n = rng() % 5;
                for (std::uint64_t k = 0; k < n && room > 0; ++k) {
                    const auto t = static_cast<std::int64_t>(1 + rng() % 400);
                    if (t > room)
                        break;
                    room -= t;
                    mb.docs.push_back({id++, t, s - static_cast<std::int64_t>(rng() % (s + 1))});
                }
            }
        }
        out.push_back(std::move(b));
    }
    return out;
}

void expect_equal(const runtime::global_batch& a, const runtime::global_batch& b) {
    ASSERT_EQ(a.step, b.step);
    ASSERT_EQ(a.replicas.size(), b.replicas.size());
    for (std::size_t r = 0; r < a.replicas.size(); ++r) {
        ASSERT_EQ(a.replicas[r].micro_batches.size(), b.replicas[r].micro_batches.size());
        for (std::size_t m = 0; m < a.replicas[r].micro_batches.size(); ++m) {
            const auto& x = a.replicas[r].micro_batches[m].docs;
            const auto& y = b.replicas[r].micro_batches[m].docs;
            ASSERT_EQ(x.size(), y.size());
            for (std::size_t k = 0; k < x.size(); ++k) {
                EXPECT_EQ(x[k].id, y[k].id);
                EXPECT_EQ(x[k].tokens, y[k].tokens);
                EXPECT_EQ(x[k].drawn_step, y[k].drawn_step);
            }
        }
    }
}

void write_plan(const std::string& path, const tuner::plan_header& h,
                const std::vector<runtime::global_batch>& steps,
                const std::vector<runtime::document>& waiting) {
    tuner::plan_writer w(path, h);
    for (const auto& s : steps)
        w.write(s);
    w.finish(waiting);
}

std::vector<std::string> lines_of(const std::string& path) {
    std::ifstream in(path);
    std::vector<std::string> lines;
    for (std::string l; std::getline(in, l);)
        lines.push_back(l);
    return lines;
}

void write_lines(const std::string& path, const std::vector<std::string>& lines) {
    std::ofstream out(path);
    for (const auto& l : lines)
        out << l << "\n";
}

// Reads the whole plan and returns the error message (fails the test when there is none).
std::string read_error(const std::string& path) {
    try {
        (void)tuner::read_plan(path);
    } catch (const input_error& e) {
        return e.what();
    }
    ADD_FAILURE() << "no error reading " << path;
    return {};
}

TEST(PlanIo, RoundTripKeepsEveryStepAndTheWaitingDocuments) {
    temp_dir dir;
    for (const char* name : {"plan.jsonl", "plan.jsonl.gz"}) {
        for (std::uint64_t seed = 1; seed <= 5; ++seed) {
            SCOPED_TRACE(fmt::format("{} seed {}", name, seed));
            const auto h = make_header(static_cast<int>(1 + seed % 2), static_cast<int>(seed));
            const auto steps = random_steps(h, static_cast<int>(3 + seed), seed);
            const std::vector<runtime::document> waiting = {{900, 700, 4}, {901, 1, 5}};
            const auto path = (dir / name).string();
            write_plan(path, h, steps, waiting);
            const auto back = tuner::read_plan(path);
            ASSERT_EQ(back.steps.size(), steps.size());
            for (std::size_t i = 0; i < steps.size(); ++i)
                expect_equal(steps[i], back.steps[i]);
            ASSERT_EQ(back.waiting.size(), waiting.size());
            EXPECT_EQ(back.waiting[0].id, 900);
            EXPECT_EQ(back.waiting[1].drawn_step, 5);
            EXPECT_EQ(back.header.layout_spec, h.layout_spec);
            EXPECT_EQ(back.header.context_tokens, h.context_tokens);
            EXPECT_EQ(back.header.model.name, h.model.name);
            EXPECT_EQ(back.header.model.hidden, h.model.hidden);
            EXPECT_EQ(back.header.hardware.name, h.hardware.name);
            EXPECT_EQ(back.header.packing.policy, h.packing.policy);
            EXPECT_EQ(back.header.packing.thresholds, h.packing.thresholds);
            EXPECT_EQ(back.header.packing.smax_tokens, h.packing.smax_tokens);
            EXPECT_EQ(back.header.packing.micro_batches, h.packing.micro_batches);
            EXPECT_FALSE(back.header.sharding.has_value());
        }
    }
}

TEST(PlanIo, GzipPlanIsCompressedOnDisk) {
    temp_dir dir;
    const auto path = (dir / "p.jsonl.gz").string();
    const auto h = make_header();
    write_plan(path, h, random_steps(h, 3, 7), {});
    const auto bytes = test::read_text(path);
    ASSERT_GE(bytes.size(), 2u);
    EXPECT_EQ(static_cast<unsigned char>(bytes[0]), 0x1f);
    EXPECT_EQ(static_cast<unsigned char>(bytes[1]), 0x8b);
}

TEST(PlanIo, ShardingSpecReadsBackAndABadOneIsNamed) {
    temp_dir dir;
    auto h = make_header();
    h.sharding = tuner::sharding_spec{tuner::sharding_policy::hybrid, 4096, 1.2};
    const auto path = (dir / "p.jsonl").string();
    write_plan(path, h, {}, {});
    const auto back = tuner::read_plan(path);
    ASSERT_TRUE(back.header.sharding.has_value());
    EXPECT_EQ(back.header.sharding->policy, tuner::sharding_policy::hybrid);
    EXPECT_EQ(back.header.sharding->hybrid_threshold_tokens, 4096);
    EXPECT_EQ(back.header.sharding->hybrid_max_token_imbalance, 1.2);
    EXPECT_EQ(nlohmann::json::parse(back.header.raw_json).at("schema"), "wlbtune.plan/1");

    auto j = nlohmann::json::parse(lines_of(path)[0]);
    j["sharding"] = {{"policy", "zigzag"}};
    write_lines(path, {j.dump(), R"({"end":true,"steps":0,"waiting":[]})"});
    const auto e = read_error(path);
    EXPECT_NE(e.find(path + ":1: header: sharding.policy: unknown sharding policy \"zigzag\""),
              std::string::npos)
        << e;
}

TEST(PlanIo, NothingAppearsWhenTheWriterIsNotFinished) {
    temp_dir dir;
    const auto path = (dir / "p.jsonl").string();
    {
        const auto h = make_header();
        tuner::plan_writer w(path, h);
        w.write(random_steps(h, 1, 3)[0]);
    }
    EXPECT_FALSE(std::filesystem::exists(path));
    EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

TEST(PlanIo, TruncatedPlanNamesTheFileAndTheLineAfterTheLast) {
    temp_dir dir;
    const auto path = (dir / "p.jsonl").string();
    const auto h = make_header();
    write_plan(path, h, random_steps(h, 4, 11), {});
    auto lines = lines_of(path);
    ASSERT_EQ(lines.size(), 6u); // header, 4 steps, end
    lines.pop_back();            // lose the end record
    write_lines(path, lines);
    const auto e = read_error(path);
    EXPECT_NE(e.find(path + ":6: truncated plan"), std::string::npos) << e;
    EXPECT_NE(e.find("after 4 step(s)"), std::string::npos) << e;

    // Cut in the middle of a line: that line is not JSON.
    auto text = test::read_text(path);
    std::ofstream(path) << text.substr(0, text.size() - 20);
    const auto e2 = read_error(path);
    EXPECT_NE(e2.find(path + ":5: not valid JSON: truncated"), std::string::npos) << e2;
}

TEST(PlanIo, MalformedLinesNameTheFileLineAndPlace) {
    temp_dir dir;
    const auto path = (dir / "p.jsonl").string();
    const auto h = make_header(1, 2);
    write_plan(path, h, {}, {});
    const auto header = lines_of(path)[0];
    struct bad_case {
        std::vector<std::string> lines;
        std::string expected; // after "PATH:"
    };
    const std::string ok_step0 =
        R"({"step":0,"replicas":[{"micro_batches":[{"docs":[[1,10,0]]},{"docs":[]}]}]})";
    const std::string end1 = R"({"end":true,"steps":1,"waiting":[]})";
    const std::vector<bad_case> cases = {
        {{}, "1: empty plan"},
        {{R"({"schema":"wlbtune.trace/1"})"},
         "1: not a plan: expected \"schema\": \"wlbtune.plan/1\""},
        {{"[1,2]"}, "1: header must be a JSON object"},
        {{header, "{oops"}, "2: not valid JSON"},
        {{header, "[]"}, "2: expected a step or end record"},
        {{header, R"({"step":1,"replicas":[]})"}, "2: expected step 0, found \"step\": 1"},
        {{header, R"({"step":0,"replicas":[{},{}]})"}, "2: replicas: expected an array of 1 DP"},
        {{header, R"({"step":0,"replicas":[{"micro_batches":[{"docs":[]}]}]})"},
         "2: replicas[0].micro_batches: expected 2 micro-batch(es), found 1"},
        {{header, R"({"step":0,"replicas":[{"micro_batches":[{"docs":[[1,10]]},{"docs":[]}]}]})"},
         "2: replicas[0].micro_batches[0].docs[0]: expected [id, tokens, drawn_step]"},
        {{header, R"({"step":0,"replicas":[{"micro_batches":[{"docs":[]},{"docs":[[1,0,0]]}]}]})"},
         "2: replicas[0].micro_batches[1].docs[0]: document 1 has 0 tokens"},
        {{header, R"({"step":0,"replicas":[{"micro_batches":[{"docs":[[1,5,1]]},{"docs":[]}]}]})"},
         "2: replicas[0].micro_batches[0].docs[0]: document 1 drawn in step 1, after the step 0"},
        {{header,
          R"({"step":0,"replicas":[{"micro_batches":[{"docs":[[1,900,0],[2,700,0]]},{"docs":[]}]}]})"},
         "2: replicas[0].micro_batches[0]: 1600 tokens, over the micro-batch limit 1500"},
        {{header, ok_step0, R"({"end":true,"steps":2,"waiting":[]})"},
         "3: end record says 2 steps but the plan holds 1"},
        {{header, ok_step0, R"({"end":true,"steps":1,"waiting":[[1]]})"},
         "3: waiting[0]: expected [id, tokens, drawn_step]"},
        {{header, ok_step0, end1, ok_step0}, "4: unexpected data after the end record"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.expected);
        write_lines(path, c.lines);
        const auto e = read_error(path);
        EXPECT_NE(e.find(path + ":" + c.expected), std::string::npos) << e;
    }
    // The valid version of the same plan reads.
    write_lines(path, {header, ok_step0, end1});
    EXPECT_EQ(tuner::read_plan(path).steps.size(), 1u);
}

TEST(PlanIo, BadHeaderFieldsAreNamed) {
    temp_dir dir;
    const auto path = (dir / "p.jsonl").string();
    write_plan(path, make_header(1, 2), {}, {});
    auto j = nlohmann::json::parse(lines_of(path)[0]);
    auto bad = j;
    bad["packing"]["policy"] = "zigzag";
    write_lines(path, {bad.dump()});
    EXPECT_NE(read_error(path).find(":1: unknown packing policy \"zigzag\""), std::string::npos);
    bad = j;
    bad["packing"]["replicas"] = 3;
    write_lines(path, {bad.dump()});
    EXPECT_NE(
        read_error(path).find(":1: header: packing.replicas 3 differs from the layout's dp 1"),
        std::string::npos);
    bad = j;
    bad.erase("context_tokens");
    write_lines(path, {bad.dump()});
    EXPECT_NE(read_error(path).find(":1: header: \"context_tokens\" is missing"),
              std::string::npos);
}

TEST(PlanIo, MissingFileIsAnInputError) {
    EXPECT_THROW((void)tuner::read_plan("/nonexistent/plan.jsonl"), input_error);
}

} // namespace
