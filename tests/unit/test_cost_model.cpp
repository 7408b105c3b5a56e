#include "base/error.hpp"
#include "tuner/cost/cost_model.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using namespace wlb;
using wlb::tuner::cost_model;

namespace {

cost_model make(const char* model, const char* layout_spec, const char* hw = "h100-sxm") {
    return cost_model(runtime::model_preset(model), tuner::hardware_preset(hw),
                      runtime::layout::parse(layout_spec));
}

TEST(Model, PresetParameterCountsMatchTheirPublishedSizes) {
    // Published sizes: Llama-2-7B 6.74B, Llama-2-70B 69.0B, Llama 3 8B 8.03B, 70B 70.6B,
    // 405B 405.9B (all untied embeddings). Within 2% checks that the shapes are typed right.
    const std::pair<const char*, double> published[] = {{"7b", 6.74e9},
                                                        {"70b", 68.98e9},
                                                        {"llama3-8b", 8.03e9},
                                                        {"llama3-70b", 70.55e9},
                                                        {"llama3-405b", 405.85e9}};
    for (auto [name, params] : published) {
        double got = runtime::model_preset(name).total_params();
        EXPECT_NEAR(got / params, 1.0, 0.02) << name << " has " << got;
    }
    EXPECT_NEAR(runtime::model_preset("550m").total_params() / 550e6, 1.0, 0.05);
}

TEST(Model, UnknownPresetListsTheKnownOnes) {
    try {
        (void)runtime::load_model("13b");
        FAIL();
    } catch (const input_error& e) {
        EXPECT_NE(std::string(e.what()).find("7b"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("llama3-405b"), std::string::npos);
    }
}

TEST(Model, JsonRoundTripAndValidation) {
    auto m = runtime::model_preset("70b");
    auto back = runtime::model_from_json(runtime::to_json(m), "x.json");
    EXPECT_EQ(back.layers, m.layers);
    EXPECT_EQ(back.kv_heads, m.kv_heads);
    auto j = runtime::to_json(m);
    j["heads"] = 60; // 8192 is not a multiple of 60
    EXPECT_THROW((void)runtime::model_from_json(j, "x.json"), input_error);
    j = runtime::to_json(m);
    j.erase("hidden");
    try {
        (void)runtime::model_from_json(j, "m.json");
        FAIL();
    } catch (const input_error& e) {
        EXPECT_NE(std::string(e.what()).find("m.json: model field \"hidden\" is missing"),
                  std::string::npos)
            << e.what();
    }
}

TEST(Hardware, AttentionRateJumpsBetween128And256AndIsMonotone) {
    auto h = tuner::hardware_preset("h100-sxm");
    EXPECT_GT(h.attention_fwd_tflops(256) / h.attention_fwd_tflops(128), 1.5);
    double prev = 0.0;
    for (int q = 16; q <= 1 << 17; q *= 2) {
        double r = h.attention_fwd_tflops(q);
        EXPECT_GE(r, prev) << q;
        EXPECT_LE(r, h.peak_bf16_tflops);
        prev = r;
    }
    // Table points are returned exactly.
    for (const auto& p : h.attention_fwd)
        EXPECT_DOUBLE_EQ(h.attention_fwd_tflops(p.query_tokens), p.tflops);
}

TEST(Hardware, JsonOverridesAPresetAndRejectsBadTables) {
    nlohmann::json j = {{"base", "h100-sxm"}, {"name", "my-h100"}, {"gemm_tflops", 650.0}};
    auto h = tuner::hardware_from_json(j, "hw.json");
    EXPECT_EQ(h.name, "my-h100");
    EXPECT_DOUBLE_EQ(h.gemm_tflops, 650.0);
    EXPECT_EQ(h.attention_fwd.size(), tuner::hardware_preset("h100-sxm").attention_fwd.size());
    j["attention_fwd"] = nlohmann::json::array(
        {{{"query_tokens", 256}, {"tflops", 300.0}}, {{"query_tokens", 128}, {"tflops", 150.0}}});
    EXPECT_THROW((void)tuner::hardware_from_json(j, "hw.json"), input_error);
    j["attention_fwd"] = "fast";
    EXPECT_THROW((void)tuner::hardware_from_json(j, "hw.json"), input_error);
}

TEST(CostModel, AttentionFlopsFollowTheConventionExactly) {
    auto cm = make("7b", "tp=8,cp=2,pp=4,dp=1");
    // 4 * pairs * hidden / tp with pairs = n*p + n(n+1)/2.
    const std::int64_t n = 1000, p = 3000;
    const double pairs = static_cast<double>(n * p + n * (n + 1) / 2);
    EXPECT_DOUBLE_EQ(cm.attention_fwd_flops(n, p), 4.0 * pairs * 4096 / 8);
    // Splitting a document into consecutive chunks conserves the pairs (and hence FLOPs).
    const std::int64_t d = 131072;
    double whole = cm.attention_fwd_flops(d, 0);
    double parts = 0.0;
    for (std::int64_t off = 0; off < d; off += d / 4)
        parts += cm.attention_fwd_flops(d / 4, off);
    EXPECT_DOUBLE_EQ(whole, parts);
}

TEST(CostModel, PaddingToTheTileNeverMakesAChunkCheaper) {
    auto cm = make("7b", "tp=8,cp=2,pp=4,dp=1");
    // A 1-token chunk costs as much as a full 128-token tile; 129 tokens costs 2 tiles.
    EXPECT_DOUBLE_EQ(cm.attention_fwd_seconds(1, 0), cm.attention_fwd_seconds(128, 0));
    EXPECT_DOUBLE_EQ(cm.attention_fwd_seconds(129, 0), cm.attention_fwd_seconds(256, 0));
    for (std::int64_t n = 1; n < 4096; n += 97)
        EXPECT_LE(cm.attention_fwd_seconds(n, 0), cm.attention_fwd_seconds(n + 1, 0) + 1e-18) << n;
}

TEST(CostModel, TensorParallelismDividesComputeAndBackwardFollowsTheRatios) {
    auto tp1 = make("7b", "tp=1,cp=1,pp=1,dp=1");
    auto tp8 = make("7b", "tp=8,cp=1,pp=1,dp=1");
    EXPECT_NEAR(tp1.attention_fwd_seconds(8192, 0) / tp8.attention_fwd_seconds(8192, 0), 8.0, 1e-9);
    EXPECT_NEAR(tp1.linear_fwd_seconds(8192) / tp8.linear_fwd_seconds(8192), 8.0, 1e-9);
    EXPECT_NEAR(tp8.attention_bwd_seconds(8192, 0) / tp8.attention_fwd_seconds(8192, 0), 2.5 / 0.75,
                1e-9);
    EXPECT_EQ(tp1.tp_comm_fwd_seconds(8192), 0.0);
    EXPECT_GT(tp8.tp_comm_fwd_seconds(8192), 0.0);
}

TEST(CostModel, AttentionDominatesLongDocumentsAndLinearShortOnes) {
    auto cm = make("7b", "tp=8,cp=2,pp=4,dp=1");
    // W(d)/d grows with d (the quadratic term), so 2 x 64K is cheaper than 1 x 128K.
    EXPECT_LT(2 * cm.document_fwd_seconds(65536), cm.document_fwd_seconds(131072));
    EXPECT_LT(cm.attention_fwd_seconds(512, 0), cm.linear_fwd_seconds(512));
    EXPECT_GT(cm.attention_fwd_seconds(131072, 0), cm.linear_fwd_seconds(131072));
}

TEST(CostModel, RingCollectivesFollowTheirClosedForm) {
    auto cm = make("7b", "tp=8,cp=2,pp=4,dp=1");
    const auto& h = cm.hardware();
    const double bytes = 1e9;
    double ag = cm.collective_seconds(tuner::collective::all_gather, bytes, 8, true);
    EXPECT_NEAR(ag,
                7.0 / 8.0 * bytes / (h.nvlink_gbytes_per_s * 1e9) + 7 * h.nvlink_latency_us * 1e-6,
                1e-12);
    EXPECT_NEAR(cm.collective_seconds(tuner::collective::all_reduce, bytes, 8, true), 2 * ag,
                1e-12);
    EXPECT_EQ(cm.collective_seconds(tuner::collective::all_gather, bytes, 1, true), 0.0);
    EXPECT_TRUE(cm.intra_node(runtime::axis::tp));
    EXPECT_FALSE(cm.intra_node(runtime::axis::pp)); // pp group spans 0, 16, 32, 48
}

TEST(CostModel, AnOutputLayerNotSplitByTpCostsTheWholeHeadOnEveryRank) {
    const auto model = runtime::model_preset("small");
    const auto hw = tuner::hardware_preset("cpu-dev-vm");
    tuner::cost_options whole;
    whole.split_output_layer = false;
    const cost_model one(model, hw, runtime::layout::parse("tp=1")),
        split(model, hw, runtime::layout::parse("tp=2")),
        unsplit(model, hw, runtime::layout::parse("tp=2"), whole);
    EXPECT_DOUBLE_EQ(split.output_layer_fwd_seconds(1000), one.output_layer_fwd_seconds(1000) / 2);
    EXPECT_DOUBLE_EQ(unsplit.output_layer_fwd_seconds(1000), one.output_layer_fwd_seconds(1000));
    EXPECT_DOUBLE_EQ(unsplit.output_layer_bwd_seconds(1000), one.output_layer_bwd_seconds(1000));
    // The layers are split as before.
    EXPECT_DOUBLE_EQ(unsplit.linear_fwd_seconds(1000), split.linear_fwd_seconds(1000));
    // Written only where it differs from the default, and read back.
    EXPECT_FALSE(split.to_json()["options"].contains("split_output_layer"));
    const auto back = cost_model::from_json(unsplit.to_json(), "cm.json");
    EXPECT_DOUBLE_EQ(back.output_layer_fwd_seconds(1000), one.output_layer_fwd_seconds(1000));
}

TEST(CostModel, JsonRoundTripPredictsTheSame) {
    auto cm = make("70b", "tp=16,cp=4,pp=4,dp=1", "h200");
    auto back = cost_model::from_json(cm.to_json(), "cm.json");
    for (std::int64_t d : {100, 4096, 131072})
        EXPECT_DOUBLE_EQ(back.document_fwd_seconds(d), cm.document_fwd_seconds(d));
    auto j = cm.to_json();
    j["schema"] = "other/1";
    EXPECT_THROW((void)cost_model::from_json(j, "cm.json"), input_error);
}

} // namespace
