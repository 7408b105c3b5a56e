#include "profiler/capture/launch/profile_job.hpp"

#include "base/atomic_file.hpp"
#include "base/error.hpp"
#include "profiler/capture/inject/private_files.hpp"
#include "runtime/parallel/layout.hpp"
#include "wlb/build_info.hpp"

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <regex>
#include <sstream>
#include <unistd.h>

namespace wlb::profiler {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view session_prefix = "profile.";
constexpr std::string_view session_suffix = ".json";

std::string default_dir() {
    const std::time_t now = std::time(nullptr);
    std::tm local{};
    ::localtime_r(&now, &local);
    char buffer[64];
    std::strftime(buffer, sizeof buffer, "wlbtune-profile-%Y%m%d-%H%M%S", &local);
    return buffer;
}

std::string absolute(const std::string& dir) {
    std::error_code ec;
    auto p = fs::absolute(dir, ec).lexically_normal();
    if (ec)
        return dir;
    std::string s = p.string();
    while (s.size() > 1 && s.back() == '/')
        s.pop_back();
    return s;
}

/// A shell word: as is when it is plain, else single-quoted.
std::string shell_word(const std::string& s) {
    if (!s.empty() && s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                          "0123456789_-./=:,+@%") == std::string::npos)
        return s;
    std::string out = "'";
    for (char c : s)
        out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

std::string session_file(const std::string& dir, const std::string& session) {
    std::string safe;
    for (char c : session)
        safe += std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' ? c : '_';
    return dir + "/" + std::string(session_prefix) + safe + std::string(session_suffix);
}

nlohmann::json options_json(const inject_config& c) {
    return {{"mode", capture_mode_name(c.mode)},
            {"steps", c.steps},
            {"skip_steps", c.skip_steps},
            {"seconds", c.seconds},
            {"window_seconds", c.window_seconds},
            {"activities", activities_text(c.activities)},
            {"nvtx", c.nvtx},
            {"step_range", c.step_range},
            {"step_source", step_source_name(c.steps_from)},
            {"poll_ms", c.poll_ms},
            {"buffer_mb", c.buffer_bytes >> 20},
            {"buffers", c.max_buffers},
            {"max_records", c.max_records}};
}

std::string analyze_command(const std::string& dir, const capture_summary& s) {
    std::string cmd = "wlbtune analyze " + shell_word(dir);
    if (s.layout_source.rfind("none", 0) == 0 && s.ranks.size() > 1)
        cmd += " --layout tp=...,cp=...,pp=...,dp=...";
    return cmd;
}

} // namespace

std::string default_inject_library() {
    std::error_code ec;
    const auto exe = fs::read_symlink("/proc/self/exe", ec);
    if (ec)
        return {};
    const auto lib = exe.parent_path() / std::string(inject_library_name);
    return fs::exists(lib, ec) ? lib.string() : std::string();
}

std::string default_session(const env_lookup& env) {
    if (const char* job = env("SLURM_JOB_ID")) {
        const char* step = env("SLURM_STEP_ID");
        return fmt::format("slurm-{}.{}", job, step ? step : "batch");
    }
    if (const char* job = env("OMPI_MCA_ess_base_jobid"))
        return fmt::format("ompi-{}", job);
    if (const char* ns = env("PMIX_NAMESPACE"))
        return fmt::format("pmix-{}", ns);
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    return fmt::format("{}-{}-{}", host, ::getpid(), static_cast<long long>(std::time(nullptr)));
}

void apply_capture_flags(const capture_flags& f, inject_config& c) {
    if (f.armed && f.capture_range != "all")
        throw usage_error("--armed and --capture-range profiler-api both say when to capture; "
                          "give one");
    if (f.capture_range == "profiler-api")
        c.mode = capture_mode::profiler_api;
    else if (f.capture_range != "all")
        throw input_error(
            fmt::format("--capture-range \"{}\": expected all or profiler-api", f.capture_range));
    if (f.armed)
        c.mode = capture_mode::armed;
    if (c.skip_steps > 0 && c.mode != capture_mode::full)
        throw usage_error("--skip-steps is for a capture from the start; an armed capture starts "
                          "when triggered");
    std::string problem;
    if (!parse_activities(f.activities, c.activities, problem))
        throw input_error("--activities: " + problem);
    if (!parse_step_source(f.step_source, c.steps_from))
        throw input_error(fmt::format("--step-source \"{}\": expected auto, nvtx, profiler-api, "
                                      "nccl or none",
                                      f.step_source));
    c.nvtx = !f.no_nvtx;
    c.buffer_bytes = static_cast<std::size_t>(f.buffer_mb) << 20;
}

profile_result profile_job(const profile_options& o) {
    profile_result r;
    r.dir = absolute(o.output_dir.empty() ? default_dir() : o.output_dir);
    const uid_t me = ::geteuid();
    capture_run run;
    run.dir = r.dir;
    run.layout = o.layout;
    run.order = o.order;
    run.options = options_json(o.capture);
    if (!o.layout.empty()) // checked before the job runs, not after
        (void)runtime::layout::parse(o.layout,
                                     o.order.empty() ? runtime::layout::default_order : o.order);

    if (o.finalize) {
        if (auto p = private_dir_problem(r.dir, me); !p.empty())
            throw input_error(fmt::format("--finalize: {}", p));
        r.session = o.session;
        if (r.session.empty()) {
            const auto sessions = sessions_in(r.dir);
            if (sessions.empty())
                throw input_error(fmt::format("--finalize: {} holds no process report "
                                              "(*.capture.json)",
                                              r.dir));
            r.session = sessions.front();
            if (sessions.size() > 1)
                run.notes.push_back(fmt::format("the directory holds {} sessions; the most "
                                                "recent, \"{}\", is gathered (--session picks "
                                                "another)",
                                                sessions.size(), r.session));
        }
        run.session = r.session;
        r.summary = write_capture_manifest(run);
        r.analyze_command = analyze_command(r.dir, r.summary);
        return r;
    }

    if (o.command.empty())
        throw usage_error("no command to profile: give it after --, e.g. wlbtune profile -- "
                          "torchrun --nproc-per-node 8 train.py");
    if (!o.capture.step_range.empty()) {
        try {
            std::regex check(o.capture.step_range, std::regex::ECMAScript);
        } catch (const std::regex_error& e) {
            throw input_error(fmt::format("--step-range \"{}\" is not a regular expression: {}",
                                          o.capture.step_range, e.what()));
        }
    }
    for (const char* var : {cuda_injection_variable, nvtx_injection_variable})
        if (const char* v = std::getenv(var); v != nullptr && *v != '\0')
            throw input_error(fmt::format("{} is already set (to \"{}\"): another tool injects "
                                          "into this job; unset it to profile with wlbtune",
                                          var, v));
    if (build_info::with_cuda) {
        r.library = o.library.empty() ? default_inject_library() : absolute(o.library);
        std::error_code ec;
        if (r.library.empty() || !fs::is_regular_file(r.library, ec))
            throw runtime_failure(
                o.library.empty()
                    ? fmt::format("the injection library {} is not beside this wlbtune; build "
                                  "the wlbtune_inject target, or give --library PATH",
                                  inject_library_name)
                    : fmt::format("--library {}: no such file", o.library));
        r.injected = true;
    } else {
        run.notes.push_back("this wlbtune was built without CUDA: it has no injection library, "
                            "so the command ran without capture");
    }

    if (auto p = make_private_dir(r.dir, me); !p.empty())
        throw runtime_failure(fmt::format("cannot use {} as the capture directory: {}", r.dir, p));
    const std::string probe = r.dir + "/.wlbtune-write-test";
    if (auto p = write_private_file(probe, "probe\n"); !p.empty())
        throw runtime_failure(fmt::format("cannot write into the capture directory: {}", p));
    ::unlink(probe.c_str());

    r.session = o.session.empty() ? default_session(process_environment()) : o.session;
    inject_config config = o.capture;
    config.capture_dir = r.dir;
    config.session = r.session;
    job_command cmd;
    cmd.argv = o.command;
    if (r.injected) {
        cmd.set_env = inject_environment(config);
        cmd.set_env.emplace_back(cuda_injection_variable, r.library);
        if (config.nvtx)
            cmd.set_env.emplace_back(nvtx_injection_variable, r.library);
    }
    // The session file: `wlbtune trigger` checks for an armed one.
    const nlohmann::json marker = {{"schema", profile_schema},
                                   {"session", r.session},
                                   {"mode", capture_mode_name(config.mode)},
                                   {"command", o.command},
                                   {"injected", r.injected},
                                   {"pid", static_cast<long>(::getpid())}};
    const std::string marker_file = session_file(r.dir, r.session);
    if (auto p = write_private_file(marker_file, marker.dump(2) + "\n"); !p.empty())
        throw runtime_failure(fmt::format("cannot write into the capture directory: {}", p));

    run.session = r.session;
    run.command = o.command;
    run.library = r.library;
    try {
        r.exit = run_job(cmd);
    } catch (const input_error&) {
        // The command never started: leave no capture behind.
        ::unlink(marker_file.c_str());
        std::error_code ec;
        fs::remove(r.dir, ec); // only when empty
        throw;
    }
    run.exit = r.exit;
    r.summary = write_capture_manifest(run);
    r.analyze_command = analyze_command(r.dir, r.summary);
    return r;
}

trigger_request trigger_capture(const std::string& dir_in, std::int64_t steps, double seconds) {
    const std::string dir = absolute(dir_in);
    const uid_t me = ::geteuid();
    if (auto p = private_dir_problem(dir, me); !p.empty())
        throw input_error(fmt::format("{} is not a capture directory of yours: {}", dir_in, p));
    bool armed = false;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
        const std::string name = entry.path().filename().string();
        if (!name.starts_with(session_prefix) || !name.ends_with(session_suffix))
            continue;
        const auto read = read_private_file(entry.path().string(), me, 1 << 16);
        if (!read.content)
            continue;
        const auto j = nlohmann::json::parse(*read.content, nullptr, false);
        if (j.is_object() && j.value("mode", "") == "armed")
            armed = true;
    }
    if (!armed)
        throw input_error(fmt::format("{} is not the capture directory of a `wlbtune profile "
                                      "--armed` run (no armed session file {}*{} in it)",
                                      dir_in, session_prefix, session_suffix));
    std::string problem;
    const auto r = write_trigger(dir, me, steps, seconds, problem);
    if (!r)
        throw runtime_failure(fmt::format("cannot trigger a capture in {}: {}", dir_in, problem));
    return *r;
}

} // namespace wlb::profiler
