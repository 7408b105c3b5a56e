// End-to-end: a fixed list of commands (golden/commands.txt) prints exactly what it printed when
// the expected files were recorded: stdout, stderr, the exit code and the JSON report each
// command writes. This is the check that a refactor changed no behaviour ([structure]).
//
// What legitimately differs from one run to the next is masked before comparing, and nothing
// else: the temporary directory and the executable's path, measured wall-clock figures (the
// packers' "pack us/step" column, "pack_seconds", "elapsed_seconds", the tuner's search time and
// threads, one per core), the build's description
// ("tool": with or without CUDA, library versions), and the identity (bytes, hash) of inputs the
// list itself wrote into the temporary directory (they embed those paths and timings).
// WLB_UPDATE_GOLDEN=1 rewrites the expected files instead of comparing.
#include "support/cli_runner.hpp"

#include <cstdlib>
#include <fstream>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

using wlb::test::read_text;
using wlb::test::run_wlbtune;
using wlb::test::temp_dir;

namespace {

const std::filesystem::path golden_dir =
    std::filesystem::path(WLB_SOURCE_DIR) / "tests" / "integration" / "golden";

struct golden_command {
    std::string name;
    std::string args; ///< with {tmp} still in it
};

std::vector<golden_command> read_commands() {
    std::vector<golden_command> list;
    std::istringstream in(read_text(golden_dir / "commands.txt"));
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#')
            continue;
        const auto space = line.find(' ');
        list.push_back({line.substr(0, space), line.substr(space + 1)});
    }
    return list;
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
    if (from.empty())
        return;
    for (auto at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
        s.replace(at, from.size(), to);
}

std::string mask_paths(std::string s, const std::string& tmp) {
    replace_all(s, WLBTUNE_EXE, "{exe}");
    replace_all(s, tmp, "{tmp}");
    return s;
}

/// In a table whose header ends with "pack us/step", the last field of each row is a measured
/// time: replaced by ' #' (the column's alignment with it).
std::string mask_text(const std::string& text, const std::string& tmp) {
    // The tuner's search line: its wall time, and its threads (one per core by default).
    static const std::regex search_time(R"(evaluations in [0-9.]+ s on [0-9]+ thread)");
    std::istringstream in(
        std::regex_replace(mask_paths(text, tmp), search_time, "evaluations in # s on # thread"));
    std::string out;
    std::string line;
    bool in_timed_table = false;
    while (std::getline(in, line)) {
        if (line.empty())
            in_timed_table = false;
        else if (line.ends_with("pack us/step"))
            in_timed_table = true;
        else if (in_timed_table && line.find_first_not_of('-') != std::string::npos) {
            const auto end = line.find_last_not_of(' ');
            const auto start = line.find_last_of(' ', end);
            line = line.substr(0, line.find_last_not_of(' ', start) + 1) + " #";
        }
        out += line + '\n';
    }
    return out;
}

void mask_json(nlohmann::json& j, const std::string& tmp) {
    // Measured figures, and the build's own description (CUDA or not, library versions).
    static const std::set<std::string> masked = {"pack_seconds", "elapsed_seconds", "threads",
                                                 "tool"};
    if (j.is_string()) {
        j = mask_paths(j.get<std::string>(), tmp);
    } else if (j.is_array()) {
        for (auto& v : j)
            mask_json(v, tmp);
    } else if (j.is_object()) {
        const bool written_here = j.contains("path") && j["path"].is_string() &&
                                  j["path"].get<std::string>().starts_with(tmp);
        for (auto& [key, v] : j.items()) {
            if (masked.contains(key) || (written_here && (key == "hash" || key == "bytes")))
                v = "#";
            else
                mask_json(v, tmp);
        }
    }
}

std::string masked_report(const std::filesystem::path& p, const std::string& tmp) {
    auto j = nlohmann::json::parse(read_text(p));
    mask_json(j, tmp);
    return j.dump(2) + "\n";
}

/// A command's stdout: masked as JSON when it is a JSON report (--json without a file).
std::string masked_stdout(const std::string& out, const std::string& tmp) {
    auto j = nlohmann::json::parse(out, nullptr, false);
    if (j.is_discarded() || !j.is_object())
        return mask_text(out, tmp);
    mask_json(j, tmp);
    return j.dump(2) + "\n";
}

void check(const std::string& file, const std::string& actual, bool update) {
    const auto path = golden_dir / file;
    if (update) {
        std::ofstream(path, std::ios::binary) << actual;
        return;
    }
    ASSERT_TRUE(std::filesystem::exists(path))
        << path << " is missing; record it with WLB_UPDATE_GOLDEN=1";
    EXPECT_EQ(read_text(path), actual) << "differs from " << path;
}

TEST(CliGolden, OutputsAreUnchanged) {
    const bool update = std::getenv("WLB_UPDATE_GOLDEN") != nullptr;
    temp_dir dir;
    const auto tmp = dir.path().string();
    const auto report = dir / "out.json";
    const auto commands = read_commands();
    ASSERT_GE(commands.size(), 10u);
    for (const auto& c : commands) {
        SCOPED_TRACE(c.name + ": wlbtune " + c.args);
        auto args = c.args;
        replace_all(args, "{tmp}", tmp);
        const auto r = run_wlbtune(args);
        check(c.name + ".out",
              masked_stdout(r.out, tmp) + "exit " + std::to_string(r.exit_code) + "\n", update);
        check(c.name + ".err", mask_text(r.err, tmp), update);
        if (std::filesystem::exists(report)) {
            check(c.name + ".json", masked_report(report, tmp), update);
            std::filesystem::remove(report);
        }
    }
}

} // namespace
