// CP sharding recorded in a plan (tuner/plan/plan_io.hpp, `wlbtune pack --sharding`): write -> read
// round trips under every policy, the recorded chunks hold every token of every micro-batch
// exactly once, a bad record names the file, the line and the JSON path, and the plan loop
// (tuner/plan/shard_plan.hpp) measures recorded chunks and compares them with a policy.
#include "base/error.hpp"
#include "support/cli_runner.hpp"
#include "tuner/cost/cost_model.hpp"
#include "tuner/plan/plan_io.hpp"
#include "tuner/plan/shard_plan.hpp"
#include "tuner/sharding/make_sharder.hpp"
#include "tuner/sharding/shard_run.hpp"
#include "tuner/sharding/sharding.hpp"

#include <fstream>
#include <gtest/gtest.h>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

using namespace wlb;
using tuner::sharding_policy;
using tuner::sharding_spec;
using wlb::test::temp_dir;

namespace {

tuner::plan_header make_header(int cp, int dp, int micro_batches) {
    tuner::plan_header h;
    h.layout_spec = fmt::format("tp=2,cp={},pp={},dp={}", cp, micro_batches, dp);
    h.context_tokens = 65536;
    h.model = runtime::model_preset("7b");
    h.hardware = tuner::hardware_preset("h100-sxm");
    h.data = "memory";
    h.packing.policy = tuner::packing_policy::varlen;
    h.packing.context_tokens = 65536;
    h.packing.replicas = dp;
    h.packing.micro_batches = micro_batches;
    h.packing.smax_tokens = 98304;
    return h;
}

tuner::cost_model cost_for(const tuner::plan_header& h) {
    return tuner::cost_model(h.model, h.hardware, runtime::layout::parse(h.layout_spec));
}

// Random steps within the header's shape: a mix of tiny (< 2cp), short and long documents.
std::vector<runtime::global_batch> random_steps(const tuner::plan_header& h, int cp, int steps,
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
                const int n = static_cast<int>(rng() % 12);
                for (int k = 0; k < n; ++k) {
                    const auto kind = rng() % 4;
                    const std::int64_t hi = kind == 0 ? 2 * cp : kind == 1 ? 500 : 8000;
                    mb.docs.push_back({id++, 1 + static_cast<std::int64_t>(rng() % hi), s});
                }
            }
        }
        out.push_back(std::move(b));
    }
    return out;
}

// Writes the steps sharded by `spec`; returns what was written.
std::vector<tuner::step_sharding> write_sharded(const std::string& path,
                                                const tuner::plan_header& h,
                                                const std::vector<runtime::global_batch>& steps) {
    const auto cost = cost_for(h);
    const auto sharder = tuner::make_sharder(*h.sharding, cost);
    tuner::plan_writer w(path, h);
    tuner::shard_run_accumulator acc;
    std::vector<tuner::step_sharding> written;
    for (const auto& s : steps) {
        written.push_back(tuner::shard_step(s, *sharder, cost, acc));
        w.write(s, &written.back());
    }
    w.finish({});
    return written;
}

/// Independent of find_sharding_error: counts, token by token, how often each token of each
/// document of the micro-batch is held over all ranks.
void expect_every_token_once(const runtime::micro_batch& mb,
                             const runtime::sharded_micro_batch& s) {
    std::map<std::int64_t, std::vector<int>> held;
    for (const auto& d : mb.docs)
        held[d.id].assign(static_cast<std::size_t>(d.tokens), 0);
    for (const auto& rank : s.ranks)
        for (const auto& c : rank.chunks) {
            ASSERT_TRUE(held.count(c.doc_id)) << "unknown document " << c.doc_id;
            auto& h = held[c.doc_id];
            ASSERT_GE(c.q_offset, 0);
            ASSERT_LE(c.q_offset + c.q_tokens, static_cast<std::int64_t>(h.size()));
            for (std::int64_t t = c.q_offset; t < c.q_offset + c.q_tokens; ++t)
                ++h[static_cast<std::size_t>(t)];
        }
    for (const auto& [id, h] : held)
        for (std::size_t t = 0; t < h.size(); ++t)
            ASSERT_EQ(h[t], 1) << "document " << id << " token " << t;
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

std::string read_error(const std::string& path) {
    try {
        (void)tuner::read_plan(path);
    } catch (const input_error& e) {
        return e.what();
    }
    ADD_FAILURE() << "no error reading " << path;
    return {};
}

TEST(PlanSharding, RoundTripUnderEveryPolicyHoldsEveryTokenOnce) {
    temp_dir dir;
    const sharding_spec specs[] = {{sharding_policy::per_seq, {}},
                                   {sharding_policy::per_doc, {}},
                                   {sharding_policy::adaptive, {}},
                                   {sharding_policy::hybrid, {}},
                                   {sharding_policy::hybrid, 2000, 1.1}};
    int trial = 0;
    for (int cp : {1, 2, 3, 4, 8, 16}) {
        for (const auto& spec : specs) {
            ++trial;
            SCOPED_TRACE(fmt::format("cp {} {}", cp, tuner::describe_sharding(spec)));
            auto h = make_header(cp, 1 + trial % 2, 2 + trial % 3);
            h.sharding = spec;
            const auto steps = random_steps(h, cp, 3, static_cast<std::uint64_t>(trial));
            const auto path = (dir / (trial % 2 ? "p.jsonl" : "p.jsonl.gz")).string();
            const auto written = write_sharded(path, h, steps);

            const auto back = tuner::read_plan(path);
            ASSERT_TRUE(back.header.sharding.has_value());
            EXPECT_EQ(back.header.sharding->policy, spec.policy);
            EXPECT_EQ(back.header.sharding->hybrid_threshold_tokens, spec.hybrid_threshold_tokens);
            ASSERT_EQ(back.sharding.size(), steps.size());
            for (std::size_t s = 0; s < steps.size(); ++s) {
                ASSERT_EQ(back.sharding[s].size(), steps[s].replicas.size());
                for (std::size_t r = 0; r < steps[s].replicas.size(); ++r) {
                    const auto& mbs = back.steps[s].replicas[r].micro_batches;
                    ASSERT_EQ(back.sharding[s][r].size(), mbs.size());
                    for (std::size_t m = 0; m < mbs.size(); ++m) {
                        const auto& got = back.sharding[s][r][m];
                        const auto& want = written[s][r][m];
                        ASSERT_EQ(got.sharded.ranks.size(), static_cast<std::size_t>(cp));
                        EXPECT_TRUE(tuner::same_chunks(got.sharded, want.sharded));
                        EXPECT_EQ(got.applied, want.applied);
                        EXPECT_EQ(got.threshold_tokens, want.threshold_tokens);
                        EXPECT_EQ(got.fell_back, want.fell_back);
                        // What was recorded is what the policy may apply.
                        if (spec.policy == sharding_policy::per_seq ||
                            spec.policy == sharding_policy::per_doc) {
                            EXPECT_EQ(got.applied, spec.policy);
                        } else {
                            EXPECT_NE(got.applied, sharding_policy::adaptive);
                        }
                        expect_every_token_once(mbs[m], got.sharded);
                    }
                }
            }
        }
    }
}

TEST(PlanSharding, BadRecordsNameTheFileLineAndPlace) {
    temp_dir dir;
    const auto path = (dir / "p.jsonl").string();
    auto h = make_header(2, 1, 1);
    h.sharding = sharding_spec{sharding_policy::adaptive, {}};
    write_sharded(path, h, {});
    const auto header = lines_of(path)[0];
    auto with_sharding = [](const std::string& sharding) {
        return R"({"step":0,"replicas":[{"micro_batches":[{"docs":[[7,5,0],[8,3,0]],"sharding":)" +
               sharding + "}]}]}";
    };
    const std::string end1 = R"({"end":true,"steps":1,"waiting":[]})";
    const std::string ok =
        R"({"applied":"per-doc","ranks":[[[7,0,2],[7,4,1],[8,0,1]],[[7,2,2],[8,1,2]]]})";
    // The valid record reads (per-doc of [5, 3] at cp = 2, tests/unit/test_sharding.cpp).
    write_lines(path, {header, with_sharding(ok), end1});
    ASSERT_EQ(tuner::read_plan(path).sharding.size(), 1u);

    const std::string mb = "2: replicas[0].micro_batches[0]";
    const std::pair<std::string, std::string> cases[] = {
        {R"({"step":0,"replicas":[{"micro_batches":[{"docs":[[7,5,0]]}]}]})",
         mb + ": \"sharding\" is missing"},
        {with_sharding(R"({"applied":"adaptive","ranks":[[[7,0,5],[8,0,3]],[]]})"),
         mb + ".sharding.applied: \"adaptive\" is a policy, not a layout"},
        {with_sharding(R"({"applied":"hybrid","ranks":[[[7,0,5]],[[8,0,3]]]})"),
         mb + ".sharding: layout \"hybrid\" cannot come from the header's sharding policy "
              "\"adaptive\""},
        {with_sharding(R"({"applied":"zigzag","ranks":[]})"),
         mb + ".sharding.applied: unknown layout \"zigzag\""},
        {with_sharding(
             R"({"applied":"per-seq","threshold_tokens":4,"ranks":[[[7,0,4]],[[7,4,1],[8,0,3]]]})"),
         mb + ".sharding.threshold_tokens: only a hybrid layout has a threshold"},
        {with_sharding(R"({"applied":"per-doc","ranks":[[[7,0,5],[8,0,3]]]})"),
         mb + ".sharding.ranks: expected an array of 2 CP rank(s) (the layout's cp), found 1 "
              "element(s)"},
        {with_sharding(R"({"applied":"per-doc","ranks":[[[7,0,2],[8,0,1]],[[7,2,3],[8,1]]]})"),
         mb + ".sharding.ranks[1][1]: expected [doc_id, q_offset, q_tokens]"},
        {with_sharding(R"({"applied":"per-doc","ranks":[[[7,0,3],[8,0,1]],[[7,2,3],[8,1,2]]]})"),
         mb + ".sharding.ranks: document 7: token 2 is held twice"},
        {with_sharding(R"({"applied":"per-doc","ranks":[[[7,0,2],[8,0,1]],[[7,2,2],[8,1,2]]]})"),
         mb + ".sharding.ranks: document 7: token 4 is held by no rank"},
        {with_sharding(R"({"applied":"per-doc","ranks":[[[7,0,5],[9,0,1]],[[8,0,3]]]})"),
         mb + ".sharding.ranks: rank 0 holds a chunk of unknown document 9"},
    };
    for (const auto& [line, expected] : cases) {
        SCOPED_TRACE(expected);
        write_lines(path, {header, line, end1});
        const auto e = read_error(path);
        EXPECT_NE(e.find(path + ":" + expected), std::string::npos) << e;
    }

    // A record without a sharding header.
    const auto plain_path = (dir / "plain.jsonl").string();
    {
        tuner::plan_writer w(plain_path, make_header(2, 1, 1));
        w.finish({});
    }
    write_lines(plain_path, {lines_of(plain_path)[0], with_sharding(ok), end1});
    const auto e = read_error(plain_path);
    EXPECT_NE(e.find(plain_path + ":" + mb +
                     ": a \"sharding\" record, but the header carries no \"sharding\" policy"),
              std::string::npos)
        << e;
}

TEST(PlanSharding, WriterRefusesShardingThatBreaksTheContract) {
    temp_dir dir;
    auto h = make_header(2, 1, 1);
    h.sharding = sharding_spec{sharding_policy::per_doc, {}};
    runtime::global_batch b;
    b.replicas.resize(1);
    b.replicas[0].micro_batches.resize(1);
    b.replicas[0].micro_batches[0].docs = {{7, 5, 0}};
    tuner::step_sharding bad(1);
    bad[0].push_back({});
    bad[0][0].applied = sharding_policy::per_doc;
    bad[0][0].sharded.ranks.resize(2);
    bad[0][0].sharded.ranks[0].chunks = {{7, 0, 3}}; // tokens 3 and 4 held by no rank
    tuner::plan_writer w((dir / "p.jsonl").string(), h);
    EXPECT_THROW(w.write(b, &bad), internal_error);
    EXPECT_THROW(w.write(b), internal_error); // a sharded plan needs every step's sharding
}

TEST(PlanSharding, ShardPlanMeasuresRecordedChunksAndComparesAPolicy) {
    temp_dir dir;
    const auto path = (dir / "p.jsonl").string();
    auto h = make_header(4, 2, 3);
    h.sharding = sharding_spec{sharding_policy::per_doc, {}};
    const auto steps = random_steps(h, 4, 4, 99);
    (void)write_sharded(path, h, steps);
    const auto cost = cost_for(h);

    // Recorded chunks measured as they are equal per-doc sharded anew.
    tuner::plan_reader recorded(path);
    const auto from_plan = tuner::shard_plan(recorded, nullptr, cost);
    EXPECT_FALSE(from_plan.recorded.has_value());
    tuner::shard_run_accumulator acc;
    const auto per_doc = tuner::make_sharder({sharding_policy::per_doc, {}}, cost);
    for (const auto& s : steps)
        (void)tuner::shard_step(s, *per_doc, cost, acc);
    const auto direct = acc.summary();
    EXPECT_EQ(from_plan.run.micro_batches, direct.micro_batches);
    EXPECT_DOUBLE_EQ(from_plan.run.predicted_seconds, direct.predicted_seconds);
    EXPECT_EQ(from_plan.run.applied, direct.applied);

    // A policy on a plan that records chunks for the same cp is compared with them.
    tuner::plan_reader same(path);
    const auto again = tuner::shard_plan(same, per_doc.get(), cost);
    ASSERT_TRUE(again.recorded.has_value());
    EXPECT_EQ(again.differing_micro_batches, 0);
    EXPECT_DOUBLE_EQ(again.recorded->predicted_seconds, again.run.predicted_seconds);

    tuner::plan_reader other(path);
    const auto per_seq = tuner::make_sharder({sharding_policy::per_seq, {}}, cost);
    const auto vs = tuner::shard_plan(other, per_seq.get(), cost);
    ASSERT_TRUE(vs.recorded.has_value());
    EXPECT_DOUBLE_EQ(vs.recorded->predicted_seconds, direct.predicted_seconds);
    EXPECT_GT(vs.differing_micro_batches, 0);
    EXPECT_LE(vs.differing_micro_batches, vs.run.micro_batches);
}

TEST(PlanSharding, ChoiceFollowsThePolicyTheCpAndWhatThePlanRecords) {
    auto h = make_header(2, 1, 1);
    // No sharding in the plan: adaptive by default; "plan" is an error.
    auto c = tuner::choose_plan_sharding(h, 2, 2, "", "");
    ASSERT_TRUE(c.spec.has_value());
    EXPECT_EQ(c.spec->policy, sharding_policy::adaptive);
    EXPECT_THROW((void)tuner::choose_plan_sharding(h, 2, 2, "plan", ""), input_error);

    h.sharding = sharding_spec{sharding_policy::hybrid, 4096};
    c = tuner::choose_plan_sharding(h, 2, 2, "", ""); // recorded chunks, same cp
    EXPECT_FALSE(c.spec.has_value());
    EXPECT_EQ(c.reported.policy, sharding_policy::hybrid);
    c = tuner::choose_plan_sharding(h, 2, 4, "", ""); // another cp: the plan's policy anew
    ASSERT_TRUE(c.spec.has_value());
    EXPECT_EQ(c.spec->policy, sharding_policy::hybrid);
    EXPECT_EQ(c.spec->hybrid_threshold_tokens, 4096);
    EXPECT_NE(c.source.find("recorded chunks are for cp=2"), std::string::npos) << c.source;
    EXPECT_THROW((void)tuner::choose_plan_sharding(h, 2, 4, "plan", ""), input_error);
    c = tuner::choose_plan_sharding(h, 2, 2, "", "8k"); // a new threshold: shard anew
    ASSERT_TRUE(c.spec.has_value());
    EXPECT_EQ(c.spec->hybrid_threshold_tokens, 8192);
    c = tuner::choose_plan_sharding(h, 2, 2, "per-seq", "");
    ASSERT_TRUE(c.spec.has_value());
    EXPECT_EQ(c.spec->policy, sharding_policy::per_seq);
    // A threshold with a policy that has none is refused, never ignored.
    EXPECT_THROW((void)tuner::choose_plan_sharding(h, 2, 2, "per-seq", "8k"), input_error);
    EXPECT_THROW((void)tuner::choose_plan_sharding(h, 2, 2, "plan", "8k"), input_error);
    EXPECT_THROW((void)tuner::choose_plan_sharding(h, 2, 2, "zigzag", ""), input_error);
}

} // namespace
