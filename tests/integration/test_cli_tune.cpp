// End-to-end: wlbtune tune writes a wlbtune.config/1 document whose figures agree with each
// other, `wlbtune pack --config` reproduces exactly the batches the tuner evaluated, and bad
// configs or conflicting options are refused with the documented exit codes.
#include "support/cli_runner.hpp"
#include "tuner/cost/cost_model.hpp"
#include "tuner/data/document_stream.hpp"
#include "tuner/plan/plan_io.hpp"
#include "tuner/search/evaluate.hpp"
#include "tuner/spec/tuned_config.hpp"

#include <fmt/format.h>
#include <fstream>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using wlb::test::read_text;
using wlb::test::run_wlbtune;
using wlb::test::temp_dir;

namespace {

const std::string data = "synthetic:wlbllm?n=40000&seed=4";
// A small job that tunes in seconds: 550M at 64K context on tp=2,cp=2,pp=2,dp=2, 64 steps.
const std::string job = fmt::format("--data '{}' --model 550m --context 64k "
                                    "--layout tp=2,cp=2,pp=2,dp=2 --context-policy split "
                                    "--shuffle 3 --steps 64 --max-steps 64 --threads 2 "
                                    "--time-budget 300s",
                                    data);

struct tuned {
    temp_dir dir;
    std::string config;
    nlohmann::json json;
};

// Tunes once for every test of this file.
const tuned& tuned_once() {
    static tuned x;
    static const bool done = [] {
        x.config = (x.dir / "tuned.json").string();
        const auto r = run_wlbtune(fmt::format("tune {} -o '{}'", job, x.config));
        EXPECT_EQ(r.exit_code, 0) << r.err;
        EXPECT_NE(r.out.find("SIMULATED"), std::string::npos) << r.out;
        EXPECT_NE(r.out.find("what each knob bought"), std::string::npos) << r.out;
        x.json = nlohmann::json::parse(read_text(x.config));
        return true;
    }();
    (void)done;
    return x;
}

TEST(CliTune, WritesAConsistentConfig) {
    const auto& j = tuned_once().json;
    EXPECT_EQ(j.at("schema"), "wlbtune.config/1");
    EXPECT_EQ(j.at("layout").at("spec"), "tp=2,cp=2,pp=2,dp=2");
    EXPECT_EQ(j.at("context_tokens"), 65536);
    EXPECT_EQ(j.at("data").at("spec"), data);
    EXPECT_EQ(j.at("data").at("shuffle_seed"), 3);
    EXPECT_EQ(j.at("data").at("context_policy"), "split");
    EXPECT_EQ(j.at("predicted").at("label"), "simulated");
    const double step = j.at("predicted").at("step_seconds");
    for (const char* b : {"plain", "fixed_greedy", "paper"}) {
        const auto& base = j.at("baselines").at(b);
        const double s = base.at("step_seconds");
        if (base.at("feasible").get<bool>()) {
            EXPECT_LE(step, s) << b; // never predicted worse than a feasible baseline
        }
    }
    EXPECT_DOUBLE_EQ(j.at("predicted").at("speedup").at("over_plain").get<double>(),
                     j.at("baselines").at("plain").at("step_seconds").get<double>() / step);
    EXPECT_LE(j.at("predicted").at("delay_iterations").at("mean").get<double>(), 0.5);
    EXPECT_EQ(j.at("evaluated").at("steps"), 64);
    EXPECT_EQ(j.at("winner").at("steps"), 64);
    EXPECT_FALSE(j.at("search").at("stopped_by_budget").get<bool>());
}

// Acceptance (issue [tuner]): `pack --config` reproduces exactly the batches the tuner evaluated.
TEST(CliTune, PackConfigReproducesTheEvaluatedBatches) {
    const auto& t = tuned_once();
    const auto c = wlb::tuner::read_tuned_config(t.config);
    const auto plan = (t.dir / "plan.jsonl").string();
    const auto r = run_wlbtune(
        fmt::format("pack --config '{}' --steps {} -o '{}'", t.config, c.evaluated_steps, plan));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto p = wlb::tuner::read_plan(plan);
    EXPECT_EQ(wlb::tuner::to_json(p.header.packing), wlb::tuner::to_json(c.packing));
    ASSERT_TRUE(p.header.sharding.has_value()); // the tuned sharding, applied and recorded
    EXPECT_EQ(wlb::tuner::to_json(*p.header.sharding), wlb::tuner::to_json(c.sharding));
    ASSERT_EQ(p.sharding.size(), p.steps.size());

    // The tuner's evaluation of the winner, with the batches it packed.
    const wlb::tuner::cost_model costs(c.model, c.hardware,
                                       wlb::runtime::layout::parse(c.layout_spec, c.layout_order));
    wlb::tuner::stream_options so;
    so.context_tokens = c.context_tokens;
    so.policy = wlb::tuner::parse_context_policy(c.data.context_policy);
    so.shuffle_seed = c.data.shuffle_seed;
    auto stream = wlb::tuner::open_document_stream(c.data.spec, so);
    const auto docs = wlb::tuner::materialize_documents(stream, c.data.tokens);
    ASSERT_EQ(static_cast<std::int64_t>(docs.documents.size()), c.data.documents);
    wlb::tuner::evaluation_config e;
    e.packing = c.packing;
    e.sharding = c.sharding;
    e.steps = c.evaluated_steps;
    std::vector<wlb::runtime::global_batch> evaluated;
    e.on_batch = [&](const wlb::runtime::global_batch& b) {
        evaluated.push_back(b);
    };
    const auto ev = wlb::tuner::evaluate(costs, docs, e);
    // The tuner counts the steps after its warm-up (a quarter of them).
    const auto& w = t.json.at("winner");
    const auto warmup = w.at("warmup_steps").get<std::size_t>();
    ASSERT_EQ(warmup, static_cast<std::size_t>(c.evaluated_steps / 4));
    double sum = 0.0;
    for (std::size_t i = warmup; i < ev.step_seconds.size(); ++i)
        sum += ev.step_seconds[i];
    EXPECT_NEAR(sum / static_cast<double>(ev.step_seconds.size() - warmup),
                w.at("step_seconds").get<double>(), 1e-12);

    ASSERT_EQ(p.steps.size(), evaluated.size());
    for (std::size_t s = 0; s < evaluated.size(); ++s) {
        const auto& a = evaluated[s];
        const auto& b = p.steps[s];
        EXPECT_EQ(a.step, b.step);
        ASSERT_EQ(a.replicas.size(), b.replicas.size());
        for (std::size_t r2 = 0; r2 < a.replicas.size(); ++r2) {
            const auto& ma = a.replicas[r2].micro_batches;
            const auto& mb = b.replicas[r2].micro_batches;
            ASSERT_EQ(ma.size(), mb.size()) << "step " << s;
            for (std::size_t m = 0; m < ma.size(); ++m) {
                ASSERT_EQ(ma[m].docs.size(), mb[m].docs.size()) << "step " << s << " mb " << m;
                for (std::size_t d = 0; d < ma[m].docs.size(); ++d) {
                    EXPECT_EQ(ma[m].docs[d].id, mb[m].docs[d].id);
                    EXPECT_EQ(ma[m].docs[d].tokens, mb[m].docs[d].tokens);
                    EXPECT_EQ(ma[m].docs[d].drawn_step, mb[m].docs[d].drawn_step);
                }
            }
        }
    }
}

// `simulate --config` simulates the same steps: the tuner's figure is their mean after its
// warm-up (the first quarter of the steps).
TEST(CliTune, SimulateConfigGivesTheTunersSteps) {
    const auto& t = tuned_once();
    const auto r = run_wlbtune(fmt::format("simulate --config '{}' --json -", t.config));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    const auto& steps = j.at("steps");
    const auto evaluated = t.json.at("evaluated").at("steps").get<std::size_t>();
    ASSERT_EQ(steps.size(), evaluated);
    double sum = 0.0;
    for (std::size_t i = evaluated / 4; i < evaluated; ++i)
        sum += steps[i].at("step_seconds").get<double>();
    EXPECT_NEAR(sum / static_cast<double>(evaluated - evaluated / 4),
                t.json.at("predicted").at("step_seconds").get<double>(), 1e-9);
    const auto bad = run_wlbtune(fmt::format("simulate --config '{}' --packing plain", t.config));
    EXPECT_EQ(bad.exit_code, 2) << bad.err;
}

TEST(CliTune, JsonOnStdout) {
    const auto r = run_wlbtune(fmt::format("tune {} --fixed-micro-batches --json -", job));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j.at("schema"), "wlbtune.config/1");
    EXPECT_EQ(j.at("packing").at("micro_batches"), 2); // --fixed-micro-batches keeps pp
}

TEST(CliTune, BadInputIsRefused) {
    temp_dir dir;
    const auto bad = (dir / "bad.json").string();
    { std::ofstream(bad) << R"({"schema": "wlbtune.plan/1"})"; }
    auto r = run_wlbtune(fmt::format("pack --config '{}' --steps 2", bad));
    EXPECT_EQ(r.exit_code, 3) << r.err;
    EXPECT_NE(r.err.find("bad.json"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("schema"), std::string::npos) << r.err;
    r = run_wlbtune(fmt::format("pack --config '{}' --policy plain", bad));
    EXPECT_EQ(r.exit_code, 2) << r.err; // --config excludes the packing options
    r = run_wlbtune("tune --time-budget soon");
    EXPECT_EQ(r.exit_code, 3) << r.err;
    EXPECT_NE(r.err.find("--time-budget"), std::string::npos) << r.err;
    r = run_wlbtune("tune --data 'synthetic:lognormal?n=10' --time-budget 5s");
    EXPECT_EQ(r.exit_code, 3) << r.err; // too few documents for one step
    EXPECT_NE(r.err.find("steps"), std::string::npos) << r.err;
}

} // namespace
