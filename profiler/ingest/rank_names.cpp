#include "profiler/ingest/rank_names.hpp"

#include "base/error.hpp"
#include "runtime/parallel/layout.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <fmt/format.h>
#include <fstream>
#include <limits>
#include <sstream>

namespace wlb::profiler {
namespace {

using runtime::axis;

// A rank or coordinate written in a name ("rank 12"): below the largest world wlbtune reads.
// More is bad input naming the name (std::stoi threw out_of_range past INT_MAX, an internal
// error; found by tests/fuzz/fuzz_traces).
int number_in_name(const std::string& digits, std::string_view name) {
    std::int64_t v = 0;
    const auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
    if (ec != std::errc{} || p != digits.data() + digits.size() || v >= runtime::max_world_size)
        throw input_error(fmt::format("the name \"{}\" says {}, beyond the largest world wlbtune "
                                      "reads ({} ranks)",
                                      name, digits, runtime::max_world_size));
    return static_cast<int>(v);
}

// An upper bound on the copies the regex compiler makes for a pattern's bounded repetitions:
// the product of every {n}, {n,} and {n,m}'s largest count (as if all were nested).
double repetition_copies(std::string_view pattern) {
    double copies = 1.0;
    for (std::size_t i = 0; i < pattern.size(); ++i) {
        if (pattern[i] != '{' || (i > 0 && pattern[i - 1] == '\\'))
            continue;
        double most = 0.0, current = 0.0;
        bool digits = false;
        std::size_t j = i + 1;
        for (; j < pattern.size() && pattern[j] != '}'; ++j) {
            const char c = pattern[j];
            if (std::isdigit(static_cast<unsigned char>(c))) {
                current = current * 10.0 + (c - '0');
                digits = true;
            } else if (c == ',') {
                most = std::max(most, current);
                current = 0.0;
            } else {
                digits = false; // not a repetition: a literal brace
                break;
            }
        }
        if (digits && j < pattern.size())
            copies *= std::max(1.0, std::max(most, current));
    }
    return copies;
}

int axis_index(std::string_view a) {
    if (a == "tp")
        return 0;
    if (a == "cp")
        return 1;
    if (a == "pp")
        return 2;
    if (a == "dp")
        return 3;
    return -1;
}

int& coord(runtime::coords& c, int index) {
    return c[static_cast<axis>(index)];
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& ch : out)
        ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return out;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
        s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
        s.remove_suffix(1);
    return s;
}

bool parse_int(std::string_view s, int& out) {
    s = trim(s);
    if (!s.empty() && s.front() == '+')
        s.remove_prefix(1);
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc{} && p == s.data() + s.size() && !s.empty();
}

} // namespace

int saturated_int(std::string_view digits) noexcept {
    int out = 0;
    const auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), out);
    if (ec == std::errc::result_out_of_range)
        return std::numeric_limits<int>::max();
    return ec == std::errc{} ? out : -1;
}

void name_coords::fill_from(const name_coords& other) {
    if (rank < 0)
        rank = other.rank;
    for (int k = 0; k < 4; ++k)
        if (coord(where, k) < 0)
            coord(where, k) = other.where[static_cast<axis>(k)];
    if (!lane)
        lane = other.lane;
}

name_coords coords_in_name(std::string_view name) {
    name_coords out;
    std::string s = lower(name);
    // "TP rank 1" (and tp_rank=1, tp-rank: 1): removed once read, so that "rank 1" below does
    // not take it for a global rank.
    static const std::regex spelled(R"((^|[^a-z])(tp|cp|pp|dp)[\s_\-]*rank[\s_\-:=#]*(\d+))");
    for (std::smatch m; std::regex_search(s, m, spelled);) {
        coord(out.where, axis_index(m[2].str())) = number_in_name(m[3].str(), name);
        s = m.prefix().str() + m[1].str() + " " + m.suffix().str();
    }
    // "tp1 cp0 pp1 dp0", "tp=1", "pp_2".
    static const std::regex compact(R"((^|[^a-z0-9])(tp|cp|pp|dp)[\s_\-=:]?(\d+)(?![0-9]))");
    for (std::smatch m; std::regex_search(s, m, compact);) {
        auto& c = coord(out.where, axis_index(m[2].str()));
        if (c < 0)
            c = number_in_name(m[3].str(), name);
        s = m.prefix().str() + m[1].str() + " " + m.suffix().str();
    }
    static const std::regex global(R"((^|[^a-z])rank[\s_\-:=#]*(\d+))");
    if (std::smatch m; std::regex_search(s, m, global))
        out.rank = number_in_name(m[2].str(), name);
    static const std::regex lane_re(
        R"((^|[^a-z])(compute|misc|(tp|cp|pp|dp)[\s_\-]comm)($|[^a-z]))");
    if (std::smatch m; std::regex_search(s, m, lane_re)) {
        const std::string l = m[2].str();
        if (l == "compute")
            out.lane = runtime::lane::compute;
        else if (l == "misc")
            out.lane = runtime::lane::host;
        else
            out.lane = runtime::lane_from_name(l.substr(0, 2));
    }
    return out;
}

rank_map rank_map::parse(std::string_view text) {
    rank_map out;
    std::string source(text);
    std::vector<std::string> lines;
    if (!source.empty() && source.front() == '@') {
        const std::string path = source.substr(1);
        std::ifstream in(path);
        if (!in)
            throw usage_error(fmt::format("--rank-map @{}: cannot read the file", path));
        for (std::string line; std::getline(in, line);) {
            if (auto hash = line.find('#'); hash != std::string::npos)
                line.resize(hash);
            lines.push_back(line);
        }
    } else {
        std::stringstream ss(source);
        for (std::string part; std::getline(ss, part, ';');)
            lines.push_back(part);
    }
    for (const auto& raw : lines) {
        const std::string_view line = trim(raw);
        if (line.empty())
            continue;
        auto bad = [&](std::string_view why) {
            return usage_error(fmt::format(
                "--rank-map rule \"{}\": {} (expected SUBJECT:PATTERN -> AXIS=VALUE[, ...], "
                "SUBJECT process, thread, file, pid or tid, AXIS rank, tp, cp, pp or dp, VALUE "
                "an integer or $N[+K]; docs/formats.md, \"Rank map\")",
                line, why));
        };
        const auto colon = line.find(':');
        const auto arrow = line.rfind("->");
        if (colon == std::string_view::npos || arrow == std::string_view::npos || arrow < colon)
            throw bad("no ':' before the pattern or no '->' after it");
        rule r;
        r.text = std::string(line);
        const std::string what = lower(trim(line.substr(0, colon)));
        if (what == "process")
            r.what = subject::process;
        else if (what == "thread")
            r.what = subject::thread;
        else if (what == "file")
            r.what = subject::file;
        else if (what == "pid")
            r.what = subject::pid;
        else if (what == "tid")
            r.what = subject::tid;
        else
            throw bad(fmt::format("unknown subject \"{}\"", what));
        const std::string pattern(trim(line.substr(colon + 1, arrow - colon - 1)));
        if (pattern.empty())
            throw bad("empty pattern");
        // libstdc++'s regex compiler reads a count or back-reference into a long without an
        // overflow check (undefined behaviour; found by tests/fuzz/fuzz_specs under UBSan):
        // longer digit runs than any rank needs are refused before it sees them.
        if (std::size_t run = 0; std::any_of(pattern.begin(), pattern.end(), [&](char c) {
                run = std::isdigit(static_cast<unsigned char>(c)) ? run + 1 : 0;
                return run > 9;
            }))
            throw bad("a number of more than 9 digits in the pattern");
        // libstdc++ compiles a bounded repetition x{n} into n copies of x, nested ones into the
        // product: "{4,7}..{9223372}" took seconds to compile (fuzz_specs). No rank pattern needs
        // more than a few hundred copies.
        if (repetition_copies(pattern) > 1000)
            throw bad("its bounded repetitions ({n} and {n,m}) multiply to more than 1000 copies");
        try {
            r.pattern = std::regex(pattern, std::regex::ECMAScript);
        } catch (const std::regex_error& e) {
            throw bad(fmt::format("the pattern is not a regular expression ({})", e.what()));
        }
        std::stringstream ss(std::string(line.substr(arrow + 2)));
        for (std::string part; std::getline(ss, part, ',');) {
            const std::string_view a = trim(part);
            const auto eq = a.find('=');
            if (eq == std::string_view::npos)
                throw bad(fmt::format("assignment \"{}\" has no '='", a));
            const std::string target = lower(trim(a.substr(0, eq)));
            assignment as;
            if (target == "rank")
                as.target = 0;
            else if (axis_index(target) >= 0)
                as.target = 1 + axis_index(target);
            else
                throw bad(fmt::format("unknown axis \"{}\"", target));
            std::string_view v = trim(a.substr(eq + 1));
            if (!v.empty() && v.front() == '$') {
                if (v.size() < 2 || v[1] < '1' || v[1] > '9')
                    throw bad(fmt::format("\"{}\": a capture is $1 to $9", v));
                as.capture = v[1] - '0';
                if (as.capture > static_cast<int>(r.pattern.mark_count()))
                    throw bad(fmt::format("\"{}\": the pattern has {} captures", v,
                                          r.pattern.mark_count()));
                v.remove_prefix(2);
                v = trim(v);
                if (!v.empty()) {
                    const bool minus = v.front() == '-';
                    if (v.front() != '+' && !minus)
                        throw bad(fmt::format("\"{}\": expected + or - after the capture", a));
                    v.remove_prefix(1);
                    if (!parse_int(v, as.offset))
                        throw bad(fmt::format("\"{}\": the offset is not an integer", a));
                    if (minus)
                        as.offset = -as.offset;
                }
            } else if (!parse_int(v, as.offset) || as.offset < 0) {
                throw bad(fmt::format("\"{}\": the value is not a non-negative integer or $N", a));
            }
            r.assignments.push_back(as);
        }
        if (r.assignments.empty())
            throw bad("no assignment after '->'");
        out.m_rules.push_back(std::move(r));
    }
    if (out.m_rules.empty() && !trim(text).empty())
        throw usage_error(fmt::format("--rank-map \"{}\": no rule", text));
    return out;
}

name_coords rank_map::apply(std::string_view process_name, std::int64_t pid,
                            std::string_view thread_name, std::int64_t tid,
                            std::string_view file_name) const {
    name_coords out;
    for (const auto& r : m_rules) {
        std::string text;
        bool whole = false;
        switch (r.what) {
        case subject::process:
            text = process_name;
            break;
        case subject::thread:
            text = thread_name;
            break;
        case subject::file:
            text = file_name;
            break;
        case subject::pid:
            if (pid < 0)
                continue;
            text = std::to_string(pid);
            whole = true;
            break;
        case subject::tid:
            if (tid < 0)
                continue;
            text = std::to_string(tid);
            whole = true;
            break;
        }
        std::smatch m;
        const bool hit =
            whole ? std::regex_match(text, m, r.pattern) : std::regex_search(text, m, r.pattern);
        if (!hit)
            continue;
        for (const auto& a : r.assignments) {
            int value = a.offset;
            if (a.capture > 0) {
                int captured = 0;
                if (!parse_int(m[static_cast<std::size_t>(a.capture)].str(), captured))
                    throw input_error(fmt::format(
                        "--rank-map rule \"{}\": capture ${} of \"{}\" is "
                        "\"{}\", not an integer",
                        r.text, a.capture, text, m[static_cast<std::size_t>(a.capture)].str()));
                value = captured + a.offset;
            }
            if (value < 0)
                throw input_error(fmt::format("--rank-map rule \"{}\" gives \"{}\" the negative "
                                              "value {}",
                                              r.text, text, value));
            if (a.target == 0)
                out.rank = value;
            else
                coord(out.where, a.target - 1) = value;
        }
    }
    return out;
}

} // namespace wlb::profiler
