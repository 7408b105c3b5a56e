// How `wlbtune analyze` reads a job's traces, written apart from the command: their format
// (--format), which process is which rank (--rank-map, --layout, --order), how their clocks are
// aligned (--clock-offset), which steps count (--steps) and how many threads read them
// (--threads). Words are kept as written and turned into the analysis options by apply(), after
// parsing.
#pragma once

#include "profiler/analysis/analysis.hpp"

#include <CLI/CLI.hpp>
#include <optional>
#include <string>

namespace wlb::cli {

class ingest_option_set {
public:
    void add(CLI::App& sub);
    /// After parsing: the words into `options` (throws wlb::input_error naming a bad one).
    void apply(profiler::analysis_options& options) const;

private:
    std::string m_format = "auto", m_layout, m_order, m_clock = "auto", m_rank_map;
    std::optional<std::string> m_steps;
    int m_threads = 0;
};

} // namespace wlb::cli
