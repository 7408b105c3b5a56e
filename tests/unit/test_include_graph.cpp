// The include graph keeps the direction design.md gives the rooms (top-level folders):
//
//   base      <- everything (error path, atomic files, provenance, token counts, host memory)
//   kernels   -> base
//   runtime   -> base, kernels
//   tuner     -> base, runtime
//   profiler  -> base, runtime (and, in its CUDA edge, kernels' device query)
//   reports   -> base, runtime, tuner, profiler
//   cli, python -> anything
//
// and has no cycle, neither between folders (runtime/plan <-> runtime/trace would be one) nor
// between units (a unit is x.hpp with x.cpp: x.cpp including y.hpp while y.hpp includes x.hpp
// is a cycle). Every quoted include is a path from the repository root that exists.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <gtest/gtest.h>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

const fs::path root = WLB_SOURCE_DIR;

const std::map<std::string, std::set<std::string>> allowed_rooms = {
    {"base", {}},
    {"kernels", {"base"}},
    {"runtime", {"base", "kernels"}},
    {"tuner", {"base", "runtime"}},
    {"profiler", {"base", "runtime"}},
    {"reports", {"base", "runtime", "tuner", "profiler"}},
    {"cli", {"base", "kernels", "runtime", "tuner", "profiler", "reports"}},
    {"python", {"base", "kernels", "runtime", "tuner", "profiler", "reports"}},
};

struct include_edge {
    std::string from; ///< file, from the root
    std::string to;   ///< included file, from the root
};

std::string room_of(const std::string& path) {
    return path.substr(0, path.find('/'));
}
std::string folder_of(const std::string& path) {
    return fs::path(path).parent_path().string();
}
std::string unit_of(const std::string& path) {
    return fs::path(path).replace_extension().string();
}

std::vector<include_edge> read_includes() {
    static const std::regex include_line(R"re(^\s*#\s*include\s+"([^"]+)")re");
    std::vector<include_edge> edges;
    for (const auto& [room, _] : allowed_rooms) {
        if (!fs::exists(root / room))
            continue;
        for (const auto& e : fs::recursive_directory_iterator(root / room)) {
            const auto ext = e.path().extension().string();
            if (!e.is_regular_file() ||
                (ext != ".hpp" && ext != ".cpp" && ext != ".cu" && ext != ".cuh"))
                continue;
            const auto from = fs::relative(e.path(), root).string();
            std::ifstream in(e.path());
            std::string line;
            while (std::getline(in, line)) {
                std::smatch m;
                if (std::regex_search(line, m, include_line))
                    edges.push_back({from, m[1].str()});
            }
        }
    }
    return edges;
}

/// Strongly connected components of more than one node (Tarjan).
std::vector<std::vector<std::string>>
cycles(const std::map<std::string, std::set<std::string>>& graph) {
    std::map<std::string, int> index;
    std::map<std::string, int> low;
    std::vector<std::string> stack;
    std::set<std::string> on_stack;
    std::vector<std::vector<std::string>> out;
    int next = 0;
    std::function<void(const std::string&)> visit = [&](const std::string& v) {
        index[v] = low[v] = next++;
        stack.push_back(v);
        on_stack.insert(v);
        if (const auto it = graph.find(v); it != graph.end())
            for (const auto& w : it->second) {
                if (!index.contains(w)) {
                    visit(w);
                    low[v] = std::min(low[v], low[w]);
                } else if (on_stack.contains(w)) {
                    low[v] = std::min(low[v], index[w]);
                }
            }
        if (low[v] == index[v]) {
            std::vector<std::string> component;
            std::string w;
            do {
                w = stack.back();
                stack.pop_back();
                on_stack.erase(w);
                component.push_back(w);
            } while (w != v);
            if (component.size() > 1)
                out.push_back(component);
        }
    };
    for (const auto& [v, _] : graph)
        if (!index.contains(v))
            visit(v);
    return out;
}

std::string joined(const std::vector<std::string>& names) {
    std::string s;
    for (const auto& n : names)
        s += (s.empty() ? "" : ", ") + n;
    return s;
}

TEST(IncludeGraph, EveryQuotedIncludeIsARootPathThatExists) {
    const auto edges = read_includes();
    ASSERT_GT(edges.size(), 500u) << "read the tree at " << root;
    for (const auto& e : edges)
        if (!e.to.starts_with("wlb/")) // generated into the build tree (wlb/build_info.hpp)
            EXPECT_TRUE(fs::exists(root / e.to)) << e.from << " includes \"" << e.to << '"';
}

TEST(IncludeGraph, RoomsDependOnlyDownward) {
    for (const auto& e : read_includes()) {
        if (e.to.starts_with("wlb/"))
            continue;
        const auto from = room_of(e.from);
        const auto to = room_of(e.to);
        if (from == to)
            continue;
        // The CUDA edge of the capture asks the device query whether a GPU exists.
        if (from == "profiler" && e.from.find("/cuda/") != std::string::npos &&
            e.to == "kernels/device_query.hpp")
            continue;
        EXPECT_TRUE(allowed_rooms.at(from).contains(to))
            << e.from << " includes " << e.to << ": " << from << "/ may not depend on " << to
            << "/ (design.md, section 3)";
    }
}

TEST(IncludeGraph, NoCycleBetweenFolders) {
    std::map<std::string, std::set<std::string>> graph;
    for (const auto& e : read_includes())
        if (!e.to.starts_with("wlb/") && folder_of(e.from) != folder_of(e.to))
            graph[folder_of(e.from)].insert(folder_of(e.to));
    for (const auto& c : cycles(graph))
        ADD_FAILURE() << "folders include each other: " << joined(c);
}

TEST(IncludeGraph, NoCycleBetweenUnits) {
    std::map<std::string, std::set<std::string>> graph;
    for (const auto& e : read_includes())
        if (!e.to.starts_with("wlb/") && unit_of(e.from) != unit_of(e.to))
            graph[unit_of(e.from)].insert(unit_of(e.to));
    for (const auto& c : cycles(graph))
        ADD_FAILURE() << "units include each other (x.hpp with x.cpp is one unit): " << joined(c);
}

TEST(IncludeGraph, CycleFinderFindsACycle) {
    // The check above must be able to fail: a -> b -> c -> a is one component, d alone none.
    const auto found = cycles({{"a", {"b"}}, {"b", {"c"}}, {"c", {"a", "d"}}, {"d", {}}});
    ASSERT_EQ(found.size(), 1u);
    EXPECT_EQ(found[0].size(), 3u);
}

} // namespace
