// Trace ingestion: reads a job's traces, one rank at a time, into a job_trace
// (profiler/ingest/job_trace.hpp). Sources:
//
//   wlbtune    a wlbtune.trace/1 directory (runtime/trace/trace.hpp): `simulate --trace-dir`,
//   captures kineto     PyTorch profiler (Kineto) Chrome-trace JSON, one file per rank, plain or
//   .gz
//              (profiler/ingest/ingest_kineto.cpp says what is read)
//   megatron   Megatron-style timer timelines: Chrome-trace JSON events named like Megatron-LM's
//              timers, with step and micro-batch ids (profiler/ingest/ingest_timers.cpp; the format
//              is in docs/formats.md)
//
// A path is a trace directory (with manifest.json), a file, or a directory of per-rank files
// (every *.json and *.json.gz in it). Parsing streams with simdjson On Demand: memory holds one
// rank's file (decompressed) plus the compact events kept so far (56 bytes an event).
//
// Problems that leave the rest sound (a truncated file, a missing rank or step, overlapping or
// negative events) become warnings with the file and place, and the analysis goes on with what
// is sound. Input that cannot be read at all throws wlb::input_error naming the file.
#pragma once

#include "profiler/ingest/clock_align.hpp"
#include "profiler/ingest/job_trace.hpp"
#include "runtime/parallel/layout.hpp"
#include "runtime/trace/trace.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wlb::profiler {

enum class trace_format { automatic, wlbtune, kineto, megatron };
/// "auto", "wlbtune", "kineto", "megatron"; throws wlb::usage_error on anything else.
trace_format parse_trace_format(std::string_view text);
std::string_view trace_format_name(trace_format f) noexcept;

struct ingest_options {
    trace_format format = trace_format::automatic;
    std::optional<runtime::layout> job_layout; ///< --layout: overrides what the trace says
    clock_option clock;
};

/// Reads every path into one job trace, aligns the clocks (profiler/ingest/clock_align.hpp), sorts
/// each rank's events and checks what the analysis relies on (missing ranks and steps,
/// overlapping events on one stream), warning where something is off.
job_trace ingest(const std::vector<std::string>& paths, const ingest_options& options);

/// Which source a file or directory looks like (reads at most the first 64 KiB of a file).
trace_format detect_format(const std::string& path);

/// A trace already in memory (the simulator's), through the same checks and alignment.
job_trace ingest_trace(const runtime::trace& t, const ingest_options& options);

/// Frees the text buffer and parser the readers keep from one file to the next (ingest() calls
/// it when every file is read).
void release_parse_buffers();

// The per-format readers, each adding one file's ranks to `job`. They do not sort or align.
/// The work class of a wlbtune trace event's name (simulator and CPU runtime names).
work_class wlbtune_work_of(std::string_view name);
void read_wlbtune_dir(const std::string& dir, job_trace& job);
void read_trace(const runtime::trace& t, job_trace& job);
void read_kineto_file(const std::string& path, job_trace& job, int fallback_rank);
void read_timer_file(const std::string& path, job_trace& job, int fallback_rank);

} // namespace wlb::profiler
