// The decoder shapes `wlbtune run --model` accepts (the model registry, runtime/model/): presets,
// JSON files and their errors, the
// parameter count and the layer cut over model chunks; and the CPU hardware preset the run's
// predictions use.
#include "base/error.hpp"
#include "runtime/model/model_spec.hpp"
#include "runtime/train/decoder.hpp"
#include "support/cli_runner.hpp"
#include "tuner/cost/hardware.hpp"
#include "tuner/job/run_job.hpp"

#include <fstream>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <numeric>

using namespace wlb;
using namespace wlb::runtime;

namespace {

std::string error_of(const std::string& name_or_path) {
    try {
        (void)decoder_config_of(load_model(name_or_path));
    } catch (const input_error& e) {
        return e.what();
    }
    return "no error";
}

TEST(DecoderPresets, EveryPresetIsValidAndCountsItsParameters) {
    for (const auto& name : {"tiny", "small"}) {
        const auto c = decoder_config_of(load_model(name));
        EXPECT_EQ(c.name, name);
        EXPECT_NO_THROW(c.validate(2)); // splits over tp=2
        EXPECT_GE(c.layers, 4);         // fills pp=2 x vpp=2
        auto params = init_decoder_params<float>(c, 1);
        std::int64_t n = 0;
        params.for_each([&](const std::string&, const std::vector<float>& t) {
            n += static_cast<std::int64_t>(t.size());
        });
        EXPECT_EQ(decoder_parameter_count(c), n) << name;
        // The cost model sees the same parameters per layer.
        const auto m = load_model(name);
        EXPECT_DOUBLE_EQ(m.total_params() + static_cast<double>(c.hidden) * (2 * c.layers + 1),
                         static_cast<double>(n));
    }
    EXPECT_NE(error_of("huge").find("presets: tiny, small, 550m"), std::string::npos);
    // The registry's larger models are refused by the CPU decoder where it cannot train them.
    EXPECT_NE(error_of("70b").find("grouped-query attention"), std::string::npos);
}

TEST(DecoderPresets, JsonFilesAreReadAndTheirErrorsNameTheFileAndField) {
    test::temp_dir tmp;
    auto write = [&](const std::string& name, const std::string& text) {
        const auto p = (tmp / name).string();
        std::ofstream(p) << text;
        return p;
    };
    const auto good = write("m.json", R"({"name": "mine", "vocab": 64, "hidden": 32, "heads": 2,
                                          "ffn": 48, "layers": 3, "rope_base": 500000})");
    const auto c = decoder_config_of(load_model(good));
    EXPECT_EQ(c.name, "mine");
    EXPECT_EQ(c.layers, 3);
    EXPECT_DOUBLE_EQ(c.rope_base, 500000.0);
    EXPECT_EQ(to_json(c)["parameters"], decoder_parameter_count(c));

    const auto unknown = write("u.json", R"({"vocab": 64, "hidden": 32, "heads": 2, "ffn": 48,
                                            "layers": 3, "dropout": 0.1})");
    EXPECT_NE(error_of(unknown).find(unknown + ": unknown model field \"dropout\""),
              std::string::npos)
        << error_of(unknown);
    const auto missing = write("x.json", R"({"vocab": 64, "hidden": 32, "heads": 2, "ffn": 48})");
    EXPECT_NE(error_of(missing).find(missing + ": model field \"layers\" is missing"),
              std::string::npos);
    const auto typed = write("t.json", R"({"vocab": "64", "hidden": 32, "heads": 2, "ffn": 48,
                                          "layers": 3})");
    EXPECT_NE(error_of(typed).find("model field \"vocab\" has the wrong type"), std::string::npos);
    const auto shape = write("s.json", R"({"vocab": 64, "hidden": 30, "heads": 4, "ffn": 48,
                                          "layers": 3})");
    EXPECT_NE(error_of(shape).find(shape + ": model hidden 30 is not a multiple of heads 4"),
              std::string::npos)
        << error_of(shape);
    const auto broken = write("b.json", "{");
    EXPECT_NE(error_of(broken).find("not valid JSON"), std::string::npos);
}

TEST(DecoderPresets, ChunkLayersCutTheModelAsTheStagesHoldIt) {
    for (int layers : {4, 5, 7, 8})
        for (int chunks : {1, 2, 3, 4}) {
            const auto cut = decoder_chunk_layers(layers, chunks);
            ASSERT_EQ(static_cast<int>(cut.size()), chunks);
            EXPECT_EQ(std::accumulate(cut.begin(), cut.end(), 0), layers);
            for (int n : cut)
                EXPECT_TRUE(n == layers / chunks || n == layers / chunks + 1);
        }
    // The stages of pp=2, vpp=2 over 5 layers hold chunks {0, 2} and {1, 3}.
    decoder_config c;
    c.layers = 5;
    const auto full = init_decoder_params<float>(c, 1);
    const auto cut = decoder_chunk_layers(5, 4);
    EXPECT_EQ(stage_decoder_params(full, 2, 0, 2).layers.size(),
              static_cast<std::size_t>(cut[0] + cut[2]));
    EXPECT_EQ(stage_decoder_params(full, 2, 1, 2).layers.size(),
              static_cast<std::size_t>(cut[1] + cut[3]));
}

TEST(CpuHardwarePreset, IsAValidHardwareDescriptionWithItsSources) {
    const auto h = tuner::hardware_preset("cpu-dev-vm");
    EXPECT_EQ(h.name, "cpu-dev-vm");
    EXPECT_NO_THROW((void)tuner::hardware_from_json(tuner::to_json(h), "cpu-dev-vm"));
    for (const char* field : {"gemm_tflops", "attention_fwd", "attention_bwd_rate_ratio",
                              "hbm_gbytes_per_s", "nvlink_gbytes_per_s", "nvlink_latency_us"})
        EXPECT_TRUE(h.sources.count(field)) << field;
    EXPECT_EQ(tuner::load_hardware("cpu-dev-vm").gemm_tflops, h.gemm_tflops);
}

} // namespace
