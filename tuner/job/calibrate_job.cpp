#include "tuner/job/calibrate_job.hpp"

#include "base/error.hpp"
#include "base/provenance.hpp"
#include "runtime/calibrate/gpu_probe.hpp"
#include "runtime/calibrate/trace_samples.hpp"

#include <chrono>
#include <ctime>
#include <fmt/format.h>

namespace wlb::tuner {
namespace {

std::string utc_now() {
    const auto t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

std::string joined_command_line() {
    std::string s;
    for (const auto& a : wlb::command_line())
        s += (s.empty() ? "" : " ") + a;
    return s;
}

std::string default_base(const calibrate_request& r, const runtime::rate_samples& samples) {
    if (!r.base.empty())
        return r.base;
    if (r.backend == "cuda")
        return samples.machine.find("H200") != std::string::npos ? "h200" : "h100-sxm";
    return "cpu-dev-vm";
}

} // namespace

calibrate_outcome calibrate_job(const calibrate_request& r, runtime::communicator* world) {
    if (r.backend != "cpu" && r.backend != "cuda")
        throw input_error(fmt::format("--backend {}: calibrate measures cpu or cuda", r.backend));
    if (r.repeats < 1)
        throw input_error(fmt::format("--repeats must be at least 1, found {}", r.repeats));
    if (!r.base.empty())
        (void)load_hardware(r.base); // a bad name or file fails before any measurement
    calibrate_outcome out;
    const auto t0 = std::chrono::steady_clock::now();
    if (!r.from_trace.empty()) {
        runtime::trace_sample_options o;
        if (r.model_given)
            o.model = runtime::load_model(r.model);
        out.samples = runtime::samples_from_trace(r.from_trace, o);
    } else {
        WLB_EXPECTS(world != nullptr, "calibrate needs the world communicator to measure");
        // Without --model: the CPU-sized small model on CPUs, Llama-2-7B's shape on a GPU.
        const auto model =
            runtime::load_model(r.model_given ? r.model : (r.backend == "cuda" ? "7b" : "small"));
        if (r.backend == "cpu") {
            runtime::cpu_probe_options o;
            o.quick = r.quick;
            o.repeats = r.repeats;
            o.numbers = r.numbers;
            o.progress = r.progress;
            out.samples = runtime::measure_cpu(model, *world, o);
        } else {
            runtime::gpu_probe_options o;
            o.quick = r.quick;
            o.repeats = std::max(r.repeats, 3);
            o.progress = r.progress;
            out.samples = runtime::measure_gpu(model, *world, o);
        }
    }
    out.measure_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    out.base = load_hardware(default_base(r, out.samples));
    fit_options fo;
    // The CPU attention kernel runs a partial block of queries as it is (no padded rows); the
    // GPU kernels pad to their tile as the presets say.
    if (r.backend == "cpu" && r.from_trace.empty())
        fo.attention_tile = 1;
    else if (!r.from_trace.empty() && out.base.name == "cpu-dev-vm")
        fo.attention_tile = 1;
    fo.name = r.from_trace.empty() ? fmt::format("{}-calibrated", r.backend) : "trace-calibrated";
    out.fit = fit_hardware(out.samples, out.base, fo);
    auto& h = out.fit.hardware;
    h.provenance = {
        {"machine", out.samples.machine},
        {"date", utc_now()},
        {"command", joined_command_line()},
        {"source", out.samples.source},
        {"model", out.samples.model.name},
        {"ranks", std::to_string(out.samples.ranks)},
        {"repeats", r.from_trace.empty() ? std::to_string(r.repeats) : "1 (a trace)"},
        {"base", out.base.name},
        {"tool", nlohmann::json(wlb::report_header("wlbtune.hardware/1", {}))["tool"].dump()},
    };
    for (std::size_t i = 0; i < out.samples.notes.size(); ++i)
        h.provenance[fmt::format("note {}", i + 1)] = out.samples.notes[i];
    out.hardware_file = to_json(h);
    out.hardware_file["schema"] = hardware_schema;
    // Every command reads what calibrate writes: a fit the file's own checks refuse (samples so
    // noisy that a rate comes out 0, say) fails here, naming the field, and nothing is written.
    try {
        (void)hardware_from_json(out.hardware_file, "the fitted hardware");
    } catch (const input_error& e) {
        const std::string why = fmt::format(
            "the fit gave hardware the cost model cannot use ({}); measure again on a quieter "
            "machine{}",
            e.what(), r.from_trace.empty() ? " or with more --repeats" : ", or from a longer run");
        if (r.from_trace.empty())
            throw runtime_failure(why);
        throw input_error(r.from_trace, why);
    }
    return out;
}

} // namespace wlb::tuner
