#include "reports/perfetto_check.hpp"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <zlib.h>

namespace wlb::reports {
namespace {

constexpr std::size_t max_problems = 50;

struct slice {
    std::int64_t start_ns = 0;
    std::int64_t end_ns = 0;
    std::size_t index = 0;
};

struct flow_end {
    int pid = 0;
    int tid = 0;
    std::int64_t ts_ns = 0;
    int count = 0;
};

bool read_maybe_gzip(const std::string& path, std::string& out) {
    gzFile f = gzopen(path.c_str(), "rb"); // reads plain files too
    if (!f)
        return false;
    char buf[1 << 16];
    int n = 0;
    while ((n = gzread(f, buf, sizeof buf)) > 0)
        out.append(buf, static_cast<std::size_t>(n));
    const bool ok = n == 0;
    gzclose(f);
    return ok;
}

std::int64_t to_ns(double micros) {
    return std::llround(micros * 1000.0);
}

} // namespace

perfetto_check_result check_perfetto_file(const std::string& path) {
    perfetto_check_result r;
    auto problem = [&](std::string text) {
        if (r.problems.size() < max_problems)
            r.problems.push_back(std::move(text));
    };
    std::string text;
    if (!read_maybe_gzip(path, text)) {
        problem(fmt::format("{}: cannot read (or bad gzip)", path));
        return r;
    }
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::parse_error& e) {
        problem(fmt::format("{}: not JSON at byte {}", path, e.byte));
        return r;
    }
    if (!j.is_object() || !j.contains("traceEvents") || !j["traceEvents"].is_array()) {
        problem(fmt::format("{}: expected an object with a \"traceEvents\" array", path));
        return r;
    }
    const std::regex process_re(R"(rank (\d+) tp\d+ cp\d+ pp\d+ dp\d+)");
    std::set<int> named_processes;
    std::set<std::pair<int, int>> named_threads;
    std::map<std::pair<int, int>, std::vector<slice>> slices;
    std::map<std::int64_t, flow_end> flow_starts, flow_finishes;
    const auto& events = j["traceEvents"];
    for (std::size_t i = 0; i < events.size(); ++i) {
        const auto& e = events[i];
        const std::string where = fmt::format("traceEvents[{}]", i);
        if (!e.is_object() || !e.contains("ph") || !e["ph"].is_string()) {
            problem(where + ": no \"ph\"");
            continue;
        }
        const std::string ph = e["ph"];
        const bool has_pid = e.contains("pid") && e["pid"].is_number_integer();
        const int pid = has_pid ? e["pid"].get<int>() : -1;
        const int tid =
            e.contains("tid") && e["tid"].is_number_integer() ? e["tid"].get<int>() : -1;
        if (ph == "M") {
            const std::string name = e.value("name", "");
            if (name == "process_name") {
                const std::string pname = e.contains("args") ? e["args"].value("name", "") : "";
                std::smatch m;
                if (!std::regex_match(pname, m, process_re) || std::stoi(m[1]) != pid)
                    problem(fmt::format("{}: process {} is named \"{}\", expected \"rank {} tpA "
                                        "cpB ppC dpD\"",
                                        where, pid, pname, pid));
                named_processes.insert(pid);
            } else if (name == "thread_name") {
                named_threads.insert({pid, tid});
            }
            continue;
        }
        if (ph == "X") {
            if (!has_pid || tid < 0 || !e.contains("ts") || !e["ts"].is_number() ||
                !e.contains("dur") || !e["dur"].is_number() || !e.contains("name") ||
                !e["name"].is_string()) {
                problem(where + ": a complete event needs integer pid and tid, numeric ts and "
                                "dur, and a name");
                continue;
            }
            const double dur = e["dur"].get<double>();
            if (dur < 0.0)
                problem(fmt::format("{}: negative dur {}", where, dur));
            const auto& args = e.contains("args") ? e["args"] : nlohmann::json();
            for (const char* key : {"micro_batch", "stage", "phase"})
                if (!args.is_object() || !args.contains(key))
                    problem(fmt::format("{}: args has no \"{}\"", where, key));
            const std::int64_t start = to_ns(e["ts"].get<double>());
            slices[{pid, tid}].push_back({start, start + to_ns(dur), i});
            ++r.slices;
            continue;
        }
        if (ph == "s" || ph == "f") {
            if (!e.contains("id") || !e["id"].is_number_integer() || !e.contains("ts")) {
                problem(where + ": a flow event needs an integer id and ts");
                continue;
            }
            auto& m = ph == "s" ? flow_starts : flow_finishes;
            auto& f = m[e["id"].get<std::int64_t>()];
            f = {pid, tid, to_ns(e["ts"].get<double>()), f.count + 1};
            if (ph == "f" && e.value("bp", "") != "e")
                problem(where +
                        ": a flow finish should bind to its enclosing slice (\"bp\": \"e\")");
            continue;
        }
        problem(fmt::format("{}: unexpected phase \"{}\"", where, ph));
    }
    for (auto& [key, list] : slices) {
        if (!named_processes.count(key.first))
            problem(fmt::format("process {} has slices but no process_name", key.first));
        if (!named_threads.count(key))
            problem(fmt::format("thread {} of process {} has slices but no thread_name", key.second,
                                key.first));
        std::sort(list.begin(), list.end(), [](const slice& a, const slice& b) {
            return a.start_ns != b.start_ns ? a.start_ns < b.start_ns : a.end_ns < b.end_ns;
        });
        for (std::size_t k = 1; k < list.size(); ++k)
            if (list[k].start_ns < list[k - 1].end_ns)
                problem(fmt::format("process {} thread {}: traceEvents[{}] starts at {} ns, "
                                    "inside traceEvents[{}] which ends at {} ns",
                                    key.first, key.second, list[k].index, list[k].start_ns,
                                    list[k - 1].index, list[k - 1].end_ns));
    }
    r.processes = named_processes.size();
    auto inside_slice = [&](const flow_end& f) {
        auto it = slices.find({f.pid, f.tid});
        if (it == slices.end())
            return false;
        const auto& list = it->second;
        auto pos = std::upper_bound(list.begin(), list.end(), f.ts_ns,
                                    [](std::int64_t t, const slice& s) { return t < s.start_ns; });
        // Any slice starting at or before ts that ends at or after it (slices do not overlap,
        // so at most the last two candidates matter when zero-length ones touch).
        for (int back = 0; back < 3 && pos != list.begin(); ++back) {
            --pos;
            if (pos->end_ns >= f.ts_ns)
                return true;
        }
        return false;
    };
    for (const auto& [id, s] : flow_starts) {
        auto it = flow_finishes.find(id);
        if (it == flow_finishes.end() || s.count != 1 || it->second.count != 1) {
            problem(fmt::format("flow {}: expected one start and one finish", id));
            continue;
        }
        ++r.flows;
        if (it->second.ts_ns < s.ts_ns)
            problem(fmt::format("flow {}: finishes at {} ns before it starts at {} ns", id,
                                it->second.ts_ns, s.ts_ns));
        if (!inside_slice(s))
            problem(fmt::format("flow {}: its start is inside no slice of its thread", id));
        if (!inside_slice(it->second))
            problem(fmt::format("flow {}: its finish is inside no slice of its thread", id));
    }
    for (const auto& [id, f] : flow_finishes)
        if (!flow_starts.count(id))
            problem(fmt::format("flow {}: a finish without a start", id));
    return r;
}

} // namespace wlb::reports
