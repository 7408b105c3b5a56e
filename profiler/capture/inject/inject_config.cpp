#include "profiler/capture/inject/inject_config.hpp"

#include <charconv>
#include <cmath>

namespace wlb::profiler {
namespace {

template <typename T>
bool whole(std::string_view s, T& out, T low, T high) {
    T v{};
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || end != s.data() + s.size() || v < low || v > high)
        return false;
    out = v;
    return true;
}

bool real(std::string_view s, double& out) {
    double v = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v) || v < 0)
        return false;
    out = v;
    return true;
}

std::string shortest(double v) {
    char buffer[64];
    const auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, v);
    return ec == std::errc() ? std::string(buffer, end) : std::to_string(v);
}

} // namespace

std::string_view capture_mode_name(capture_mode m) noexcept {
    switch (m) {
    case capture_mode::full:
        return "full";
    case capture_mode::armed:
        return "armed";
    case capture_mode::profiler_api:
        break;
    }
    return "profiler-api";
}

std::string_view step_source_name(step_source s) noexcept {
    switch (s) {
    case step_source::automatic:
        return "auto";
    case step_source::nvtx:
        return "nvtx";
    case step_source::profiler_api:
        return "profiler-api";
    case step_source::nccl_period:
        return "nccl";
    case step_source::none:
        break;
    }
    return "none";
}

bool parse_step_source(std::string_view text, step_source& out) noexcept {
    for (auto s : {step_source::automatic, step_source::nvtx, step_source::profiler_api,
                   step_source::nccl_period, step_source::none})
        if (step_source_name(s) == text) {
            out = s;
            return true;
        }
    return false;
}

bool parse_activities(std::string_view text, activity_selection& out, std::string& problem) {
    activity_selection a{false, false, false};
    std::size_t begin = 0;
    while (begin <= text.size()) {
        std::size_t end = text.find(',', begin);
        if (end == std::string_view::npos)
            end = text.size();
        const auto word = text.substr(begin, end - begin);
        if (word == "all")
            a = activity_selection{};
        else if (word == "memcpy")
            a.memcpy = true;
        else if (word == "memset")
            a.memset = true;
        else if (word == "sync")
            a.sync = true;
        else if (word != "kernel") {
            problem = "unknown activity \"" + std::string(word) +
                      "\" (expected kernel, memcpy, memset, sync or all)";
            return false;
        }
        begin = end + 1;
    }
    out = a;
    return true;
}

std::string activities_text(const activity_selection& a) {
    std::string s = "kernel";
    if (a.memcpy)
        s += ",memcpy";
    if (a.memset)
        s += ",memset";
    if (a.sync)
        s += ",sync";
    return s;
}

inject_config read_inject_config(const env_lookup& env, std::vector<std::string>& warnings) {
    inject_config c;
    auto text = [&](const char* name) -> const char* {
        return env(name);
    };
    auto bad = [&](const char* name, const char* value, const std::string& expected) {
        warnings.push_back(std::string(name) + "=\"" + value + "\": expected " + expected +
                           "; the default is used");
    };
    if (const char* v = text("WLBTUNE_CAPTURE_DIR"))
        c.capture_dir = v;
    if (const char* v = text("WLBTUNE_SESSION"))
        c.session = v;
    if (const char* v = text("WLBTUNE_CAPTURE_MODE")) {
        const std::string_view m(v);
        if (m == "full")
            c.mode = capture_mode::full;
        else if (m == "armed")
            c.mode = capture_mode::armed;
        else if (m == "profiler-api")
            c.mode = capture_mode::profiler_api;
        else
            bad("WLBTUNE_CAPTURE_MODE", v, "full, armed or profiler-api");
    }
    auto count = [&](const char* name, std::int64_t& out) {
        if (const char* v = text(name); v && !whole<std::int64_t>(v, out, 0, 1'000'000'000'000))
            bad(name, v, "a whole number >= 0");
    };
    count("WLBTUNE_STEPS", c.steps);
    count("WLBTUNE_SKIP_STEPS", c.skip_steps);
    count("WLBTUNE_MAX_RECORDS", c.max_records);
    auto seconds = [&](const char* name, double& out) {
        if (const char* v = text(name); v && !real(v, out))
            bad(name, v, "seconds >= 0");
    };
    seconds("WLBTUNE_SECONDS", c.seconds);
    seconds("WLBTUNE_WINDOW_SECONDS", c.window_seconds);
    if (const char* v = text("WLBTUNE_ACTIVITIES")) {
        std::string problem;
        if (!parse_activities(v, c.activities, problem))
            bad("WLBTUNE_ACTIVITIES", v,
                "a list of kernel, memcpy, memset, sync (" + problem + ")");
    }
    if (const char* v = text("WLBTUNE_NVTX")) {
        const std::string_view s(v);
        if (s == "0" || s == "1")
            c.nvtx = s == "1";
        else
            bad("WLBTUNE_NVTX", v, "0 or 1");
    }
    if (const char* v = text("WLBTUNE_STEP_RANGE"))
        c.step_range = v;
    if (const char* v = text("WLBTUNE_STEP_SOURCE"); v && !parse_step_source(v, c.steps_from))
        bad("WLBTUNE_STEP_SOURCE", v, "auto, nvtx, profiler-api, nccl or none");
    if (const char* v = text("WLBTUNE_POLL_MS"); v && !whole<int>(v, c.poll_ms, 10, 60'000))
        bad("WLBTUNE_POLL_MS", v, "milliseconds in [10, 60000]");
    if (const char* v = text("WLBTUNE_BUFFER_MB")) {
        std::size_t mb = 0;
        if (whole<std::size_t>(v, mb, 1, 1024))
            c.buffer_bytes = mb << 20;
        else
            bad("WLBTUNE_BUFFER_MB", v, "MiB in [1, 1024]");
    }
    if (const char* v = text("WLBTUNE_BUFFERS"); v && !whole<int>(v, c.max_buffers, 1, 4096))
        bad("WLBTUNE_BUFFERS", v, "a count in [1, 4096]");
    if (const char* v = text("WLBTUNE_CUPTI_LIBRARY"))
        c.cupti_library = v;
    return c;
}

std::vector<std::pair<std::string, std::string>> inject_environment(const inject_config& c) {
    return {
        {"WLBTUNE_CAPTURE_DIR", c.capture_dir},
        {"WLBTUNE_SESSION", c.session},
        {"WLBTUNE_CAPTURE_MODE", std::string(capture_mode_name(c.mode))},
        {"WLBTUNE_STEPS", std::to_string(c.steps)},
        {"WLBTUNE_SKIP_STEPS", std::to_string(c.skip_steps)},
        {"WLBTUNE_SECONDS", shortest(c.seconds)},
        {"WLBTUNE_WINDOW_SECONDS", shortest(c.window_seconds)},
        {"WLBTUNE_ACTIVITIES", activities_text(c.activities)},
        {"WLBTUNE_NVTX", c.nvtx ? "1" : "0"},
        {"WLBTUNE_STEP_RANGE", c.step_range},
        {"WLBTUNE_STEP_SOURCE", std::string(step_source_name(c.steps_from))},
        {"WLBTUNE_POLL_MS", std::to_string(c.poll_ms)},
        {"WLBTUNE_BUFFER_MB", std::to_string(c.buffer_bytes >> 20)},
        {"WLBTUNE_BUFFERS", std::to_string(c.max_buffers)},
        {"WLBTUNE_MAX_RECORDS", std::to_string(c.max_records)},
        {"WLBTUNE_CUPTI_LIBRARY", c.cupti_library},
    };
}

} // namespace wlb::profiler
