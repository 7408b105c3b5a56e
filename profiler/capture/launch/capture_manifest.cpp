#include "profiler/capture/launch/capture_manifest.hpp"

#include "base/atomic_file.hpp"
#include "base/error.hpp"
#include "base/provenance.hpp"
#include "profiler/capture/inject/process_capture.hpp"
#include "profiler/capture/launch/job_layout.hpp"
#include "runtime/parallel/layout.hpp"
#include "runtime/trace/trace.hpp"

#include <algorithm>
#include <filesystem>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

namespace wlb::profiler {
namespace {

namespace fs = std::filesystem;

struct process_report {
    std::string path;
    nlohmann::json report;
    fs::file_time_type written;
};

std::vector<process_report> read_reports(const std::string& dir, std::vector<std::string>& notes) {
    std::vector<process_report> out;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
        const std::string name = entry.path().filename().string();
        if (!entry.is_regular_file() || !name.ends_with(process_report_suffix))
            continue;
        std::ifstream in(entry.path());
        std::stringstream text;
        text << in.rdbuf();
        auto j = nlohmann::json::parse(text.str(), nullptr, false);
        if (j.is_discarded() || !j.is_object() || j.value("schema", "") != process_capture_schema) {
            notes.push_back(fmt::format("{}: not a process report (wlbtune.process_capture/1); "
                                        "left out",
                                        name));
            continue;
        }
        out.push_back({entry.path().string(), std::move(j), entry.last_write_time(ec)});
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.path < b.path; });
    return out;
}

} // namespace

std::vector<std::string> sessions_in(const std::string& dir) {
    std::vector<std::string> notes;
    auto reports = read_reports(dir, notes);
    std::sort(reports.begin(), reports.end(),
              [](const auto& a, const auto& b) { return a.written > b.written; });
    std::vector<std::string> out;
    for (const auto& r : reports) {
        const auto s = r.report.value("session", std::string());
        if (std::find(out.begin(), out.end(), s) == out.end())
            out.push_back(s);
    }
    return out;
}

capture_summary write_capture_manifest(const capture_run& run) {
    capture_summary sum;
    sum.notes = run.notes;
    auto reports = read_reports(run.dir, sum.notes);
    std::map<std::string, int> other_sessions;
    std::vector<process_report> mine;
    for (auto& r : reports) {
        const auto s = r.report.value("session", std::string());
        if (s == run.session)
            mine.push_back(std::move(r));
        else
            ++other_sessions[s];
    }
    for (const auto& [s, n] : other_sessions)
        sum.notes.push_back(fmt::format("{} process reports of another run (session \"{}\") are "
                                        "in the directory; left out",
                                        n, s));
    sum.processes = static_cast<int>(mine.size());
    sum.cuda_used = !mine.empty();

    // One process per rank: the one with the most events.
    std::map<int, const process_report*> by_rank;
    nlohmann::json left_out = nlohmann::json::array();
    int world = 0;
    std::vector<std::vector<std::string>> commands = {run.command};
    for (const auto& r : mine) {
        const int rank = r.report.value("rank", 0);
        world = std::max({world, rank + 1, r.report.value("world_size", 0)});
        if (r.report.contains("command") && r.report["command"].is_array())
            commands.push_back(r.report["command"].get<std::vector<std::string>>());
        auto [it, fresh] = by_rank.emplace(rank, &r);
        if (fresh)
            continue;
        const bool more = r.report.value("events", 0) > it->second->report.value("events", 0);
        const auto* dropped = more ? it->second : &r;
        if (more)
            it->second = &r;
        left_out.push_back({{"file", dropped->report.value("file", "")},
                            {"why", fmt::format("another process also claimed rank {} (pid {} and "
                                                "{}); the one with more events is kept",
                                                rank, r.report.value("pid", 0),
                                                dropped->report.value("pid", 0))}});
    }
    world = std::max(world, 1);

    // The layout: given, else from the job's flags, else DP replicas.
    std::optional<runtime::layout> job_layout;
    if (!run.layout.empty()) {
        job_layout = runtime::layout::parse(
            run.layout, run.order.empty() ? runtime::layout::default_order : run.order);
        sum.layout_source = "--layout";
    } else {
        std::string problem;
        if (const auto g = layout_from_commands(commands, world, problem)) {
            job_layout = runtime::layout::parse(g->spec, g->order);
            sum.layout_source = g->from;
        } else {
            if (!problem.empty())
                sum.notes.push_back(problem + "; the layout is not taken from the job");
            job_layout = runtime::layout(1, 1, 1, world);
            sum.layout_source = "none given or found: every rank a DP replica (give --layout, or "
                                "analyze --layout)";
        }
    }
    sum.layout = job_layout->spec();
    sum.order = job_layout->order_string();

    nlohmann::json ranks = nlohmann::json::array();
    nlohmann::json processes = nlohmann::json::array();
    std::map<std::string, std::vector<int>> sources;
    for (const auto& [rank, r] : by_rank) {
        const auto& j = r->report;
        if (rank >= job_layout->world_size()) {
            left_out.push_back({{"file", j.value("file", "")},
                                {"why", fmt::format("rank {} is outside layout {} ({} ranks)", rank,
                                                    sum.layout, job_layout->world_size())}});
            continue;
        }
        const auto file = j.value("file", std::string());
        std::error_code ec;
        if (file.empty() || file.find('/') != std::string::npos ||
            !fs::is_regular_file(fs::path(run.dir) / file, ec)) {
            left_out.push_back(
                {{"file", file}, {"why", fmt::format("rank {}'s trace file is missing", rank)}});
            continue;
        }
        ranks.push_back({{"rank", rank}, {"file", file}, {"events", j.value("events", 0)}});
        sum.ranks.push_back(rank);
        const auto& steps = j.contains("steps") ? j["steps"] : nlohmann::json::object();
        sum.steps = std::max<std::int64_t>(
            sum.steps,
            steps.contains("kept") ? static_cast<std::int64_t>(steps["kept"].size()) : 0);
        sources[steps.value("source", std::string("none"))].push_back(rank);
        if (j.contains("attribution"))
            sum.micro_batches = sum.micro_batches || j["attribution"].value("micro_batches", false);
        if (j.contains("capture") && j["capture"].contains("losses"))
            sum.dropped_records += j["capture"]["losses"].value("dropped_records", 0ull);
        nlohmann::json p = {{"rank", rank},
                            {"pid", j.value("pid", 0)},
                            {"host", j.value("host", "")},
                            {"local_rank", j.value("local_rank", -1)},
                            {"launcher", j.value("launcher", "")},
                            {"file", file},
                            {"report", fs::path(r->path).filename().string()},
                            {"events", j.value("events", 0)},
                            {"steps", steps},
                            {"windows", j.value("windows", nlohmann::json::array())},
                            {"attribution", j.value("attribution", nlohmann::json::object())}};
        if (j.contains("capture")) {
            p["losses"] = j["capture"].value("losses", nlohmann::json::object());
            p["warnings"] = j["capture"].value("warnings", nlohmann::json::array());
        }
        processes.push_back(std::move(p));
    }
    for (auto& [source, list] : sources) {
        std::sort(list.begin(), list.end());
        sum.step_sources += fmt::format(
            "{}{}{}", sum.step_sources.empty() ? "" : ", ", source,
            sources.size() > 1 ? " (ranks " + runtime::rank_ranges(list) + ")" : std::string());
    }
    for (const auto& l : left_out)
        sum.notes.push_back(fmt::format("{}: {}", l.value("file", ""), l.value("why", "")));
    if (!sum.cuda_used)
        sum.notes.push_back("no process of the command initialized CUDA, so nothing was captured");

    nlohmann::json m = report_header(runtime::trace_schema, {});
    m["source"] = "profile";
    m["layout"] = {{"spec", sum.layout}, {"order", sum.order}};
    m["world_size"] = job_layout->world_size();
    m["steps"] = sum.steps;
    m["tp_replicated"] = false;
    m["note"] = sum.cuda_used
                    ? fmt::format("captured by wlbtune profile from the job's own processes "
                                  "(CUPTI activity, the job's NVTX ranges); steps from {}",
                                  sum.step_sources)
                    : "captured by wlbtune profile: no process of the job used CUDA";
    m["clock"] = "ns, CLOCK_REALTIME of each process's host (CUPTI's clock); analyze aligns the "
                 "ranks on their collectives";
    m["ranks"] = std::move(ranks);
    nlohmann::json capture = {{"schema", profile_schema},
                              {"session", run.session},
                              {"command", run.command},
                              {"options", run.options},
                              {"library", run.library},
                              {"cuda_used", sum.cuda_used},
                              {"processes", std::move(processes)},
                              {"left_out", std::move(left_out)},
                              {"layout_source", sum.layout_source},
                              {"dropped_records", sum.dropped_records},
                              {"notes", sum.notes}};
    if (run.exit)
        capture["exit"] = {{"code", run.exit->signal != 0 ? nlohmann::json(nullptr)
                                                          : nlohmann::json(run.exit->exit_code)},
                           {"signal", run.exit->signal != 0 ? nlohmann::json(run.exit->signal)
                                                            : nlohmann::json(nullptr)},
                           {"status", run.exit->status()},
                           {"seconds", run.exit->seconds}};
    m["capture"] = std::move(capture);
    sum.manifest = (fs::path(run.dir) / "manifest.json").string();
    write_file_atomic(sum.manifest,
                      m.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
    return sum;
}

} // namespace wlb::profiler
