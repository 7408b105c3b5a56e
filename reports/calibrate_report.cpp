#include "reports/calibrate_report.hpp"

#include "base/provenance.hpp"
#include "reports/table.hpp"
#include "tuner/cost/cost_model.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <set>

namespace wlb::reports {
namespace {

std::string ratio_text(double calibrated, double preset) {
    if (!(preset > 0.0))
        return "";
    return fmt::format("{:.3f}x", calibrated / preset);
}

// "4.2% over 2 ranks", or "none" where nothing was measured.
std::string lockstep_text(const tuner::hardware_config& h) {
    if (h.lockstep_penalty <= 0.0)
        return "none";
    return fmt::format("{:.1f}% over {} ranks", 100.0 * h.lockstep_penalty, h.lockstep_ranks);
}

std::string spread_text(const tuner::hardware_config& h, const std::string& field) {
    const auto it = h.spread.find(field);
    return it == h.spread.end() ? "" : fmt::format("{:.1f}%", 100.0 * it->second);
}

} // namespace

std::string calibrate_text(const tuner::calibrate_outcome& c, const std::string& hardware_path) {
    const auto& h = c.fit.hardware;
    const auto& b = c.base;
    std::string s;
    s += fmt::format("wlbtune calibrate: {} on {}\n", c.samples.source, c.samples.machine);
    s += fmt::format("model {} (layer shapes, tp {}), {} byte elements, {} rank(s) at once, {} "
                     "samples in {:.1f} s; every figure below is measured or fitted to the "
                     "measurements\n\n",
                     c.samples.model.name, c.samples.tp, c.samples.bytes_per_element,
                     c.samples.ranks, c.samples.samples.size(), c.measure_seconds);

    table t({"field", b.name + " (preset)", "calibrated", "ratio", "spread"},
            {table::align::left, table::align::right, table::align::right, table::align::right,
             table::align::right});
    auto row = [&](const std::string& field, double preset, double cal, const char* fmt_) {
        t.add_row({field, fmt::format(fmt::runtime(fmt_), preset),
                   fmt::format(fmt::runtime(fmt_), cal), ratio_text(cal, preset),
                   spread_text(h, field)});
    };
    row("gemm_tflops", b.gemm_tflops, h.gemm_tflops, "{:.4g}");
    row("gemm_bwd_rate_ratio", b.gemm_bwd_rate(), h.gemm_bwd_rate(), "{:.3g}");
    row("hbm_gbytes_per_s", b.hbm_gbytes_per_s, h.hbm_gbytes_per_s, "{:.4g}");
    row("output_layer_tflops", b.output_layer_tflops > 0 ? b.output_layer_tflops : b.gemm_tflops,
        h.output_layer_tflops > 0 ? h.output_layer_tflops : h.gemm_tflops, "{:.4g}");
    row("output_layer_bwd_rate_ratio", b.output_layer_bwd_rate(), h.output_layer_bwd_rate(),
        "{:.3g}");
    row("attention_fwd (long chunks)", b.attention_fwd.back().tflops, h.attention_fwd.back().tflops,
        "{:.4g}");
    row("attention_bwd (long chunks)", b.attention_bwd_tflops(b.attention_fwd.back().query_tokens),
        h.attention_bwd_tflops(h.attention_fwd.back().query_tokens), "{:.4g}");
    row("attention_fwd_token_pairs", b.attention_fwd_token_pairs, h.attention_fwd_token_pairs,
        "{:.1f}");
    row("attention_bwd_token_pairs", b.attention_bwd_token_pairs, h.attention_bwd_token_pairs,
        "{:.1f}");
    t.add_row({"attention_tile", std::to_string(b.attention_tile), std::to_string(h.attention_tile),
               "", ""});
    t.add_row({"lockstep_penalty", lockstep_text(b), lockstep_text(h), "", ""});
    row("nvlink_gbytes_per_s", b.nvlink_gbytes_per_s, h.nvlink_gbytes_per_s, "{:.4g}");
    row("nvlink_latency_us", b.nvlink_latency_us, h.nvlink_latency_us, "{:.3g}");
    row("network_gbytes_per_s", b.network_gbytes_per_s, h.network_gbytes_per_s, "{:.4g}");
    row("network_latency_us", b.network_latency_us, h.network_latency_us, "{:.3g}");
    s += "calibrated hardware against the preset it replaces (TFLOP/s, GB/s, us; spread: (max - "
         "min) / median of the repeats, the median over samples)\n";
    s += t.render() + "\n";

    // Attention rates by chunk length, with the per-token term folded in (whole documents).
    std::set<int> lengths;
    for (const auto& p : h.attention_fwd)
        lengths.insert(std::max(p.query_tokens, 16));
    for (const auto& p : b.attention_fwd)
        if (p.query_tokens >= *lengths.begin() &&
            p.query_tokens <= h.attention_fwd.back().query_tokens)
            lengths.insert(p.query_tokens);
    table a({"document tokens", "preset fwd", "calibrated fwd", "preset bwd", "calibrated bwd"},
            {table::align::right, table::align::right, table::align::right, table::align::right,
             table::align::right});
    auto effective = [&](const tuner::hardware_config& hw, int n, bool bwd) {
        // TFLOP/s on exact pairs of one whole document of n tokens, padding and the per-token
        // term included: what a user of the rate sees.
        const auto l = runtime::layout(1, 1, 1, 1);
        tuner::cost_model m(c.samples.model, hw, l);
        const double flops = 4.0 * static_cast<double>(runtime::causal_pairs(n)) *
                             c.samples.model.hidden * (bwd ? 2.5 : 1.0);
        const double sec = bwd ? m.attention_bwd_seconds(n, 0) : m.attention_fwd_seconds(n, 0);
        return flops / sec / 1e12;
    };
    for (const int n : lengths)
        a.add_row({std::to_string(n), fmt::format("{:.4g}", effective(b, n, false)),
                   fmt::format("{:.4g}", effective(h, n, false)),
                   fmt::format("{:.4g}", effective(b, n, true)),
                   fmt::format("{:.4g}", effective(h, n, true))});
    s += "attention TFLOP/s on one whole document (exact causal pairs; tile padding and the "
         "per-token term included)\n";
    s += a.render() + "\n";

    table f({"samples", "n", "rms error", "worst", "worst sample", "median spread"},
            {table::align::left, table::align::right, table::align::right, table::align::right,
             table::align::left, table::align::right});
    for (const auto& cl : c.fit.classes)
        f.add_row({cl.what, std::to_string(cl.samples), fmt::format("{:.1f}%", 100 * cl.rms_error),
                   fmt::format("{:+.1f}%", 100 * cl.worst_error), cl.worst_label,
                   fmt::format("{:.1f}%", 100 * cl.median_spread)});
    s += "fit residuals: the cost model with the calibrated hardware against each sample "
         "(predicted / measured - 1)\n";
    s += f.render() + "\n";

    if (!c.fit.attention_forms.empty()) {
        table af(
            {"attention form", "rms fwd", "rms bwd", ""},
            {table::align::left, table::align::right, table::align::right, table::align::left});
        for (const auto& x : c.fit.attention_forms)
            af.add_row({x.form, fmt::format("{:.1f}%", 100 * x.rms_fwd),
                        fmt::format("{:.1f}%", 100 * x.rms_bwd), x.chosen ? "chosen" : ""});
        s += "attention forms fitted to the same samples (the table form is kept only when it "
             "beats the one-rate form by half a point)\n";
        s += af.render() + "\n";
    }
    for (const auto& n : c.samples.notes)
        s += "note: " + n + "\n";
    for (const auto& n : c.fit.notes)
        s += "note: " + n + "\n";
    if (!hardware_path.empty())
        s += fmt::format("hardware file: {} ({}); use it with --hardware {} (simulate, tune, "
                         "pack, shard, run)\n",
                         hardware_path, tuner::hardware_schema, hardware_path);
    return s;
}

nlohmann::json calibrate_json(const tuner::calibrate_outcome& c, const std::string& hardware_path) {
    auto j = wlb::report_header(calibrate_schema, {});
    j["hardware_file"] = hardware_path;
    j["hardware"] = c.hardware_file;
    j["base"] = tuner::to_json(c.base);
    j["measure_seconds"] = c.measure_seconds;
    nlohmann::json classes = nlohmann::json::array();
    for (const auto& cl : c.fit.classes)
        classes.push_back({{"what", cl.what},
                           {"samples", cl.samples},
                           {"rms_error", cl.rms_error},
                           {"worst_error", cl.worst_error},
                           {"worst_sample", cl.worst_label},
                           {"median_spread", cl.median_spread}});
    nlohmann::json forms = nlohmann::json::array();
    for (const auto& x : c.fit.attention_forms)
        forms.push_back({{"form", x.form},
                         {"rms_fwd", x.rms_fwd},
                         {"rms_bwd", x.rms_bwd},
                         {"chosen", x.chosen}});
    nlohmann::json residuals = nlohmann::json::array();
    for (const auto& r : c.fit.residuals)
        residuals.push_back({{"what", r.what},
                             {"label", r.label},
                             {"measured_seconds", r.measured_seconds},
                             {"predicted_seconds", r.predicted_seconds}});
    j["fit"] = {{"classes", classes},
                {"attention_forms", forms},
                {"residuals", residuals},
                {"notes", c.fit.notes}};
    j["samples"] = runtime::to_json(c.samples);
    return j;
}

} // namespace wlb::reports
