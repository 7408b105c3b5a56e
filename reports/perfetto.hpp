// Perfetto / Chrome trace export (the JSON object format that ui.perfetto.dev and
// chrome://tracing load). otherData marks the file as wlbtune's ("generator": "wlbtune", "kind":
// "trace") with the command that wrote it, its source ("simulated", ...), label and layout, so
// that `wlbtune analyze` reads it back as the trace it is (profiler/ingest/ingest_perfetto.cpp).
// Rules every exported file keeps (reports/perfetto_check.hpp checks them):
//   - one process per rank (pid = rank), named "rank 5 tp1 cp0 pp1 dp0", sorted by rank;
//   - one thread per lane (tid = lane + 1), named "compute", "tp", "cp", "pp", "dp", "host";
//   - complete events ("ph": "X") with "ts" and "dur" in microseconds (ns precision), and args
//     step, micro_batch, stage, virtual_stage, phase (and bytes, flops when known);
//   - never two overlapping slices on one thread (touching is fine);
//   - a flow arrow ("s" -> "f", binding to the enclosing slice) from every PP send to its
//     receive.
// Written through wlb::atomic_writer: gzip-compressed when the path ends in ".gz".
#pragma once

#include "base/atomic_file.hpp"
#include "runtime/trace/trace.hpp"

#include <cstdint>
#include <string>

namespace wlb::reports {

/// Writes `t` to `path`. `label` goes into the file's otherData (e.g. "simulated").
void write_perfetto(const runtime::trace& t, const std::string& path, const std::string& label);

/// The line that tells where a Perfetto file went: "Perfetto trace (WHAT): PATH (open in
/// https://ui.perfetto.dev)"; empty when `path` is.
[[nodiscard]] std::string perfetto_output_note(const std::string& path, const std::string& what);

/// "rank 5 tp1 cp0 pp1 dp0".
std::string rank_process_name(const runtime::layout& l, int rank);

/// Nanoseconds as the microseconds Perfetto's "ts" and "dur" take, exact for integer ns
/// ("-1.500" for -1500).
std::string perfetto_micros(std::int64_t ns);

/// A writer for a Perfetto file at `path`: gzip-compressed when the path ends in ".gz".
wlb::atomic_writer open_perfetto_file(const std::string& path);

} // namespace wlb::reports
