// Ranks in the names a trace gives its processes, threads and files. Sources name ranks in many
// ways; these are understood without help (case-insensitive, in process or thread names):
//
//   "TP rank 1", "PP rank 0", "DP rank 3", "CP rank 2"   coordinates (also "tp_rank=1",
//                                                        "tp-rank: 1")
//   "tp1 cp0 pp1 dp0", "tp=1", "pp_2"                    coordinates (any subset, any order)
//   "rank 5", "rank5", "rank_5", "Rank-5"                the global rank
//   a thread name with a lane: "..., compute", "pp-comm", "tp-comm", "cp-comm", "dp-comm",
//   "misc" (host), as Megatron-based stacks' timeline tools name them
//
// A process per DP rank whose threads are "PP rank 1, TP rank 0, compute": the process gives dp,
// the thread pp and tp, and the global rank follows from the coordinates and the layout.
//
// Anything else is told with --rank-map, a list of rules (docs/formats.md, "Rank map"):
//
//   RULES   := RULE { ";" RULE }            or "@FILE": one rule a line, "#" starts a comment
//   RULE    := SUBJECT ":" PATTERN "->" ASSIGN { "," ASSIGN }
//   SUBJECT := "process" | "thread" | "file" | "pid" | "tid"
//   PATTERN := an ECMAScript regular expression, searched in the process or thread name or the
//              file's name (for pid and tid: matched against the whole id in decimal)
//   ASSIGN  := ("rank" | "tp" | "cp" | "pp" | "dp") "=" VALUE
//   VALUE   := INTEGER | "$" DIGIT [ ("+" | "-") INTEGER ]      ($1: the first capture)
//
//   --rank-map 'process:^trainer-(\d+)$ -> dp=$1; thread:stage(\d+)/gpu(\d+) -> pp=$1, tp=$2'
//
// Every rule whose pattern matches contributes its assignments; the rules come before the
// built-in conventions, and a later rule overrides an earlier one on the same axis.
#pragma once

#include "runtime/parallel/layout.hpp"
#include "runtime/trace/trace.hpp"

#include <cstdint>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

namespace wlb::profiler {

/// What names say about a rank: its global rank and coordinates (-1 where they do not say), and
/// the lane of a thread.
struct name_coords {
    int rank = -1;
    runtime::coords where{-1, -1, -1, -1};
    std::optional<runtime::lane> lane;

    [[nodiscard]] bool any_coords() const noexcept {
        return where.tp >= 0 || where.cp >= 0 || where.pp >= 0 || where.dp >= 0;
    }
    /// Fills what `other` says and this does not.
    void fill_from(const name_coords& other);
};

/// The built-in conventions above, on one name.
name_coords coords_in_name(std::string_view name);

/// The decimal digits of a rank or coordinate found in a name, as an int; INT_MAX when the number
/// does not fit (the caller's bounds then refuse it, as they would any too-large rank).
int saturated_int(std::string_view digits) noexcept;

/// The rules of --rank-map.
class rank_map {
public:
    rank_map() = default;
    /// Throws wlb::usage_error naming --rank-map, the rule and what is wrong.
    static rank_map parse(std::string_view text);
    [[nodiscard]] bool empty() const noexcept { return m_rules.empty(); }
    /// What the rules say about a track: its process (name, id), thread (name, id) and file.
    /// Names may be empty and ids -1 where the source has none.
    [[nodiscard]] name_coords apply(std::string_view process_name, std::int64_t pid,
                                    std::string_view thread_name, std::int64_t tid,
                                    std::string_view file_name) const;

private:
    enum class subject { process, thread, file, pid, tid };
    struct assignment {
        int target = 0;  ///< 0: rank, 1 + axis index (tp, cp, pp, dp)
        int capture = 0; ///< 0: the literal alone
        int offset = 0;
    };
    struct rule {
        subject what = subject::process;
        std::string text;
        std::regex pattern;
        std::vector<assignment> assignments;
    };
    std::vector<rule> m_rules;
};

} // namespace wlb::profiler
