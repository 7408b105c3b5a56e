// Trace ingestion: reads a job's traces into a job_trace (profiler/ingest/job_trace.hpp).
// Sources:
//
//   wlbtune    a wlbtune.trace/1 directory (runtime/trace/trace.hpp): `simulate --trace-dir`,
//              captures
//   perfetto   wlbtune's own Perfetto exports (`simulate --trace`, `run`): the same events
//              (profiler/ingest/ingest_perfetto.cpp); the Perfetto trace `analyze --perfetto`
//              writes is refused with the command that works
//   kineto     PyTorch profiler (Kineto) Chrome-trace JSON, one file per rank, plain or .gz
//              (profiler/ingest/ingest_kineto.cpp says what is read)
//   megatron   Megatron-style timer timelines: Chrome-trace JSON events named like Megatron-LM's
//              timers, ranks named in any of several conventions
//              (profiler/ingest/ingest_timers.cpp, profiler/ingest/rank_names.hpp; the format is in
//              docs/formats.md)
//   nsys       Nsight Systems SQLite exports (`nsys export --type sqlite`), one file per rank
//              (profiler/ingest/ingest_nsys.cpp)
//
// A path is a trace directory (with manifest.json), a file, or a directory of per-rank files
// (every *.json, *.json.gz, *.sqlite in it). Inputs are read on `threads` threads, each file (and
// each rank file of a directory) on its own, then merged in input order, so the result does not
// depend on the thread count. Parsing streams with simdjson On Demand; each rank's events are
// condensed as soon as they are read (profiler/ingest/rank_condense.hpp): memory holds one file
// per thread (decompressed) plus the condensed records of the ranks read so far.
//
// Problems that leave the rest sound (a truncated file, a missing rank or step, overlapping or
// negative events) become warnings with the file and place, and the analysis goes on with what
// is sound. Input that cannot be read at all throws wlb::input_error naming the file.
#pragma once

#include "profiler/ingest/clock_align.hpp"
#include "profiler/ingest/job_trace.hpp"
#include "profiler/ingest/rank_names.hpp"
#include "runtime/parallel/layout.hpp"
#include "runtime/trace/trace.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wlb::profiler {

enum class trace_format { automatic, wlbtune, kineto, megatron, nsys, perfetto };
/// "auto", "wlbtune", "kineto", "megatron", "nsys", "perfetto"; throws wlb::usage_error on
/// anything else.
trace_format parse_trace_format(std::string_view text);
std::string_view trace_format_name(trace_format f) noexcept;

struct ingest_options {
    trace_format format = trace_format::automatic;
    std::optional<runtime::layout> job_layout; ///< --layout: overrides what the trace says
    clock_option clock;
    /// --rank-map: how process and thread names map to ranks (profiler/ingest/rank_names.hpp);
    /// empty: the built-in conventions only.
    std::string rank_map;
    /// Threads reading inputs; 0: one per core.
    int threads = 0;
    /// Keep every event as read instead of merging them (rank_condense.hpp): the Perfetto export
    /// of analyze draws them; memory then grows with the events.
    bool keep_events = false;
};

/// Reads every path into one job trace, aligns the clocks (profiler/ingest/clock_align.hpp), sorts
/// each rank's events and checks what the analysis relies on (missing ranks and steps,
/// overlapping events on one stream), warning where something is off.
job_trace ingest(const std::vector<std::string>& paths, const ingest_options& options);

/// Which source a file or directory looks like (reads at most the first 64 KiB of a file).
trace_format detect_format(const std::string& path);

/// Threads `threads` asks for (0: the machine's cores, at least 1).
int ingest_threads(int threads);

/// A trace already in memory (the simulator's), through the same condensing, checks and
/// alignment.
job_trace ingest_trace(const runtime::trace& t, const ingest_options& options);

/// Frees the text buffer and parser the readers keep from one file to the next (ingest() calls
/// it when every file is read).
void release_parse_buffers();

// The per-format readers, each putting one file's ranks into `part` (ranks by number,
// coordinates, or neither: the place among the inputs). They do not condense, sort or align.
/// The work class of a wlbtune trace event's name (simulator and CPU runtime names).
work_class wlbtune_work_of(std::string_view name);
/// A rank's events of a wlbtune trace in its trace form (runtime/trace/trace.hpp), into `part`.
void add_wlbtune_events(const std::vector<runtime::trace_event>& events, int rank,
                        const std::string& file, trace_part& part);
/// What a trace in memory says about the job (layout, source, batches), into `job`.
void read_trace_meta(const runtime::trace& t, job_trace& job);

/// A wlbtune.trace/1 directory opened for reading one rank file at a time (from any thread).
class wlbtune_dir {
public:
    explicit wlbtune_dir(std::string dir);
    /// The manifest's layout, source, note, command line and the batches, into `job`.
    void read_meta(job_trace& job) const;
    [[nodiscard]] const std::vector<int>& ranks() const noexcept { return m_reader.ranks(); }
    /// Reads `rank`'s file into `part`. Throws wlb::input_error naming the file and line.
    void read_rank(int rank, trace_part& part) const;
    /// After every rank is read: what a capture of a user's job (source "profile") lets the
    /// analysis attribute, said once.
    void finish(job_trace& job) const;

private:
    std::string m_dir;
    runtime::trace_reader m_reader;
    std::vector<std::string> m_command_line;
};
/// `map`: --rank-map, asked for the file name's rank when the trace names none.
void read_kineto_file(const std::string& path, trace_part& part, const rank_map& map = rank_map());
void read_timer_file(const std::string& path, trace_part& part, const rank_map& map);
void read_nsys_file(const std::string& path, trace_part& part, const rank_map& map = rank_map());
void read_perfetto_file(const std::string& path, trace_part& part);

} // namespace wlb::profiler
