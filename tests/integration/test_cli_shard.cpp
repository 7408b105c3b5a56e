// End-to-end: `wlbtune shard` on plans from `wlbtune pack` (with and without recorded CP
// sharding), its text and wlbtune.shard/1 JSON checked against each other and against the plan,
// and bad input (missing, truncated or malformed plans, bad --cp, unknown policy) exiting with
// code 3 and naming the file and the line or the option.
#include "support/cli_runner.hpp"
#include "tuner/plan/plan_io.hpp"

#include <algorithm>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <gtest/gtest.h>
#include <map>
#include <nlohmann/json.hpp>

using wlb::test::read_text;
using wlb::test::run_wlbtune;
using wlb::test::temp_dir;

namespace {

const std::string data = "'synthetic:wlbllm?n=4000&seed=5'";

// Packs 6 steps of 4 micro-batches at 32K (tp=2,cp=2,pp=4,dp=1); `extra` adds options.
std::string pack(const temp_dir& dir, const std::string& name, const std::string& extra = "") {
    const auto plan = (dir / name).string();
    auto r = run_wlbtune(fmt::format("pack --data {} --context 32k --layout tp=2,cp=2,pp=4,dp=1 "
                                     "--steps 6 -o '{}' {}",
                                     data, plan, extra));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return plan;
}

nlohmann::json read_json(const std::string& path) {
    return nlohmann::json::parse(read_text(path));
}

double max_over_mean(const std::vector<double>& v) {
    double sum = 0.0, max = 0.0;
    for (double x : v) {
        sum += x;
        max = std::max(max, x);
    }
    return sum > 0.0 ? max / (sum / static_cast<double>(v.size())) : 1.0;
}

TEST(CliShard, ReportsImbalancePerMicroBatchAndOverTheRunConsistently) {
    temp_dir dir;
    const auto plan = pack(dir, "plan.jsonl");
    const auto json = (dir / "shard.json").string();
    auto r = run_wlbtune(
        fmt::format("shard --plan '{}' --cp 4 --policy adaptive --shapes --json '{}'", plan, json));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    for (const char* text : {"--policy adaptive", "layout tp=2,cp=4,pp=4,dp=1", "predicted",
                             "CP imbalance (max/mean over CP ranks of predicted attention",
                             "token balance", "adaptive picked: per-seq", "run: 24 micro-batches"})
        EXPECT_NE(r.out.find(text), std::string::npos) << text << "\n" << r.out;

    const auto j = read_json(json);
    EXPECT_EQ(j.at("schema"), "wlbtune.shard/1");
    EXPECT_EQ(j.at("tool").at("name"), "wlbtune");
    EXPECT_TRUE(j.at("command_line").is_array());
    ASSERT_EQ(j.at("inputs").size(), 1u);
    EXPECT_EQ(j.at("inputs").at(0).at("path"), plan);
    EXPECT_EQ(j.at("inputs").at(0).at("bytes").get<std::uintmax_t>(),
              std::filesystem::file_size(plan));
    EXPECT_EQ(j.at("cp"), 4);
    EXPECT_EQ(j.at("source"), "policy");
    EXPECT_EQ(j.at("sharding").at("policy"), "adaptive");

    // Every record against the plan it came from and against its own ranks.
    const auto p = wlb::tuner::read_plan(plan);
    const auto& mbs = j.at("micro_batches");
    ASSERT_EQ(mbs.size(), 24u);
    double imbalance_sum = 0.0, worst = 0.0, seconds = 0.0;
    std::map<std::string, std::int64_t> applied;
    for (const auto& rec : mbs) {
        const auto& mb = p.steps.at(rec.at("step").get<std::size_t>())
                             .replicas.at(rec.at("replica").get<std::size_t>())
                             .micro_batches.at(rec.at("micro_batch").get<std::size_t>());
        EXPECT_EQ(rec.at("tokens").get<std::int64_t>(), mb.tokens());
        EXPECT_EQ(rec.at("documents").get<std::size_t>(), mb.docs.size());
        const auto& ranks = rec.at("ranks");
        ASSERT_EQ(ranks.size(), 4u);
        std::vector<double> attention, tokens;
        double slowest = 0.0;
        std::map<std::int64_t, std::vector<int>> held;
        for (const auto& d : mb.docs)
            held[d.id].assign(static_cast<std::size_t>(d.tokens), 0);
        for (const auto& rank : ranks) {
            attention.push_back(rank.at("predicted_attention_seconds").get<double>());
            tokens.push_back(rank.at("tokens").get<double>());
            slowest = std::max(slowest, rank.at("predicted_attention_seconds").get<double>() +
                                            rank.at("predicted_linear_seconds").get<double>());
            // Kernel shapes follow the chunks; the chunks hold every token once.
            const auto& chunks = rank.at("chunks");
            const auto& cu_q = rank.at("cu_seqlens_q");
            const auto& cu_k = rank.at("cu_seqlens_k");
            ASSERT_EQ(cu_q.size(), chunks.size() + 1);
            ASSERT_EQ(cu_k.size(), chunks.size() + 1);
            std::int64_t rank_tokens = 0;
            for (std::size_t k = 0; k < chunks.size(); ++k) {
                const auto id = chunks[k][0].get<std::int64_t>();
                const auto off = chunks[k][1].get<std::int64_t>();
                const auto n = chunks[k][2].get<std::int64_t>();
                EXPECT_EQ(cu_q[k + 1].get<std::int64_t>() - cu_q[k].get<std::int64_t>(), n);
                EXPECT_EQ(cu_k[k + 1].get<std::int64_t>() - cu_k[k].get<std::int64_t>(), off + n);
                ASSERT_TRUE(held.count(id));
                for (std::int64_t t = off; t < off + n; ++t)
                    ++held[id].at(static_cast<std::size_t>(t));
                rank_tokens += n;
            }
            EXPECT_EQ(rank.at("tokens").get<std::int64_t>(), rank_tokens);
        }
        for (const auto& [id, h] : held)
            EXPECT_TRUE(std::all_of(h.begin(), h.end(), [](int c) { return c == 1; }))
                << "document " << id;
        EXPECT_NEAR(rec.at("attention_imbalance").get<double>(), max_over_mean(attention), 1e-9);
        EXPECT_NEAR(rec.at("token_imbalance").get<double>(), max_over_mean(tokens), 1e-9);
        EXPECT_NEAR(rec.at("predicted_seconds").get<double>(), slowest, 1e-12);
        imbalance_sum += rec.at("attention_imbalance").get<double>();
        worst = std::max(worst, rec.at("attention_imbalance").get<double>());
        seconds += rec.at("predicted_seconds").get<double>();
        applied[rec.at("applied").get<std::string>()] += 1;
    }
    const auto& s = j.at("summary");
    EXPECT_EQ(s.at("micro_batches"), 24);
    EXPECT_NEAR(s.at("attention_imbalance").at("mean").get<double>(), imbalance_sum / 24.0, 1e-9);
    EXPECT_NEAR(s.at("attention_imbalance").at("worst").get<double>(), worst, 1e-12);
    EXPECT_NEAR(s.at("predicted_seconds_per_layer").get<double>(), seconds, 1e-9);
    EXPECT_EQ(s.at("applied").at("per-seq").get<std::int64_t>(), applied["per-seq"]);
    EXPECT_EQ(s.at("applied").at("per-doc").get<std::int64_t>(), applied["per-doc"]);
    EXPECT_EQ(applied["per-seq"] + applied["per-doc"], 24); // adaptive picks one of the two
    EXPECT_NE(r.out.find(fmt::format("per-seq {} (", applied["per-seq"])), std::string::npos)
        << r.out;
}

TEST(CliShard, JsonToStdoutIsTheDocumentAlone) {
    temp_dir dir;
    const auto plan = pack(dir, "plan.jsonl");
    auto r = run_wlbtune(fmt::format("shard --plan '{}' --policy per-doc --json -", plan));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out); // throws if anything else was printed
    EXPECT_EQ(j.at("schema"), "wlbtune.shard/1");
    EXPECT_EQ(j.at("cp"), 2); // the plan's layout
    EXPECT_EQ(j.at("summary").at("applied").at("per-doc"), 24);
}

TEST(CliShard, PackRecordsTheShardingAndShardReusesAndComparesIt) {
    temp_dir dir;
    const auto json = (dir / "pack.json").string();
    const auto plan = pack(dir, "sharded.jsonl.gz", "--sharding adaptive --json '" + json + "'");
    // The plan records what adaptive picked and each rank's chunks over the layout's cp.
    const auto p = wlb::tuner::read_plan(plan);
    ASSERT_TRUE(p.header.sharding.has_value());
    ASSERT_EQ(p.sharding.size(), 6u);
    std::int64_t seq = 0, doc = 0;
    for (const auto& step : p.sharding)
        for (const auto& rep : step)
            for (const auto& d : rep) {
                EXPECT_EQ(d.sharded.ranks.size(), 2u);
                seq += d.applied == wlb::tuner::sharding_policy::per_seq;
                doc += d.applied == wlb::tuner::sharding_policy::per_doc;
            }
    EXPECT_EQ(seq + doc, 24);
    const auto packed = read_json(json);
    EXPECT_EQ(packed.at("sharding").at("cp"), 2);
    EXPECT_EQ(packed.at("sharding").at("predicted").at("applied").at("per-seq"), seq);

    // Without --policy, shard measures the recorded chunks: the same figures as adaptive anew.
    const auto a = (dir / "a.json").string();
    const auto b = (dir / "b.json").string();
    auto r = run_wlbtune(fmt::format("shard --plan '{}' --json '{}'", plan, a));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("the plan's recorded chunks (adaptive, cp=2)"), std::string::npos)
        << r.out;
    EXPECT_EQ(read_json(a).at("source"), "plan");
    r = run_wlbtune(fmt::format("shard --plan '{}' --policy adaptive --json '{}'", plan, b));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(read_json(a).at("summary"), read_json(b).at("summary"));
    EXPECT_EQ(read_json(b).at("recorded_comparison").at("differing_micro_batches"), 0);
    EXPECT_NE(r.out.find("against the plan's recorded chunks: 0/24"), std::string::npos) << r.out;

    // Another policy is compared with the recorded chunks.
    r = run_wlbtune(fmt::format("shard --plan '{}' --policy per-seq --json '{}'", plan, b));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto cmp = read_json(b).at("recorded_comparison");
    EXPECT_EQ(cmp.at("summary"), read_json(a).at("summary"));
    EXPECT_EQ(cmp.at("differing_micro_batches").get<std::int64_t>(), doc);
    // adaptive is never predicted slower than per-seq
    EXPECT_LE(read_json(a).at("summary").at("predicted_seconds_per_layer").get<double>(),
              read_json(b).at("summary").at("predicted_seconds_per_layer").get<double>());

    // At another cp the plan's policy is applied anew.
    r = run_wlbtune(fmt::format("shard --plan '{}' --cp 4", plan));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("the plan's policy adaptive, applied anew at cp=4 (its recorded chunks "
                         "are for cp=2)"),
              std::string::npos)
        << r.out;
}

TEST(CliShard, BadInputExitsWithThreeAndNamesTheFileLineOrOption) {
    temp_dir dir;
    const auto plan = pack(dir, "plan.jsonl");
    const auto sharded = pack(dir, "sharded.jsonl", "--sharding per-doc");
    const auto text = read_text(plan);
    auto write = [&](const std::string& name, const std::string& body) {
        const auto path = (dir / name).string();
        std::ofstream(path) << body;
        return path;
    };
    const auto nl = [&](int n) { // offset after the n-th newline
        std::size_t at = 0;
        for (int i = 0; i < n; ++i)
            at = text.find('\n', at) + 1;
        return at;
    };
    const auto truncated = write("truncated.jsonl", text.substr(0, nl(4)));
    const auto malformed = write("malformed.jsonl", text.substr(0, nl(2)) + "{\"step\":1,oops\n");
    auto sharded_text = read_text(sharded);
    const auto at = sharded_text.find("\"applied\":\"per-doc\"");
    ASSERT_NE(at, std::string::npos);
    sharded_text.replace(at, 19, "\"applied\":\"per-seq\"");
    const auto mislabelled = write("mislabelled.jsonl", sharded_text);

    const std::pair<std::string, std::string> cases[] = {
        {"--plan /nonexistent/plan.jsonl", "/nonexistent/plan.jsonl: cannot open plan"},
        {"--plan '" + truncated + "'", truncated + ":5: truncated plan"},
        {"--plan '" + malformed + "'", malformed + ":3: not valid JSON"},
        {"--plan '" + mislabelled + "'",
         mislabelled + ":2: replicas[0].micro_batches[0].sharding: layout \"per-seq\" cannot "
                       "come from the header's sharding policy \"per-doc\""},
        {"--plan '" + plan + "' --cp 0", "--cp 0: expected a CP degree >= 1"},
        {"--plan '" + plan + "' --cp -2", "--cp -2: expected a CP degree >= 1"},
        {"--plan '" + plan + "' --cp 2000000", "--cp 2000000: world size"},
        {"--plan '" + plan + "' --policy zigzag", "--policy: unknown sharding policy \"zigzag\""},
        {"--plan '" + plan + "' --policy plan", "--policy plan: the plan records no CP sharding"},
        {"--plan '" + sharded + "' --policy plan --cp 4",
         "--policy plan: the plan records its chunks over cp=2, not cp=4"},
        {"--plan '" + plan + "' --policy per-seq --hybrid-threshold 8k",
         "--hybrid-threshold applies to the hybrid policy only"},
        {"--plan '" + plan + "' --policy hybrid --hybrid-threshold lots",
         "--hybrid-threshold \"lots\""},
    };
    for (const auto& [args, message] : cases) {
        SCOPED_TRACE(args);
        const auto json = (dir / "out.json").string();
        std::filesystem::remove(json);
        auto r = run_wlbtune("shard " + args + " --json '" + json + "'");
        EXPECT_EQ(r.exit_code, 3) << r.err;
        EXPECT_NE(r.err.find(message), std::string::npos) << r.err;
        EXPECT_TRUE(r.out.empty()) << r.out; // no half report
        // The JSON output holds the error document, not a partial report.
        const auto j = read_json(json);
        EXPECT_EQ(j.at("schema"), "wlbtune.error/1");
        EXPECT_EQ(j.at("error").at("exit_code"), 3);
    }
    // A --cp that is not a number is a malformed command line.
    auto r = run_wlbtune("shard --plan '" + plan + "' --cp four");
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find("--cp"), std::string::npos) << r.err;

    // pack refuses a bad sharding choice before writing anything.
    const auto out = (dir / "never.jsonl").string();
    for (const auto& [args, message] : std::vector<std::pair<std::string, std::string>>{
             {"--sharding zigzag", "--sharding: unknown sharding policy \"zigzag\""},
             {"--sharding adaptive --hybrid-threshold 8k",
              "--hybrid-threshold applies to --sharding hybrid only"},
             {"--hybrid-threshold 8k", "--hybrid-threshold applies to --sharding hybrid only"}}) {
        SCOPED_TRACE(args);
        r = run_wlbtune(fmt::format("pack --data {} --steps 2 {} -o '{}'", data, args, out));
        EXPECT_EQ(r.exit_code, 3) << r.err;
        EXPECT_NE(r.err.find(message), std::string::npos) << r.err;
    }
    EXPECT_FALSE(std::filesystem::exists(out));
}

} // namespace
