// A job's measured trace as analysis holds it in memory: the events of every rank in a compact
// form (72 bytes a record, names interned), per rank and step the breakdown of its time, the
// communication groups, and what ingestion had to say about the input. Every source
// (wlbtune.trace/1 directories and Perfetto exports, Kineto JSON, Megatron-style timer
// timelines, Nsight Systems SQLite exports) becomes one of these; the analysis (breakdown,
// stragglers, what-if attribution) reads nothing else.
//
// Memory grows with ranks x steps x micro-batches (times the collectives of a pass), not with
// kernels: as each rank is read, its per-step breakdown is computed from its events
// (profiler/ingest/rank_condense.hpp) and its compute events of one name and place (step,
// micro-batch, model chunk, pass, stream) are merged into one record that keeps their count and
// summed duration (the hundreds of kernels of a pass become a few records). Collectives and
// transfers stay one record each: clock alignment, last arrivals and a collective's transfer
// time match them one by one across their members. With ingest_options::keep_events (the
// Perfetto export of analyze draws every event) nothing is merged.
//
// Times are nanoseconds on one job clock after clock alignment (profiler/ingest/clock_align.hpp),
// shifted so that the first event of the job starts at 0.
#pragma once

#include "runtime/parallel/layout.hpp"
#include "runtime/trace/trace.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace wlb::profiler {

/// The most ranks a job's traces may name (rank numbers 0 .. max_trace_ranks - 1, world sizes
/// up to it): above the largest jobs run today, and low enough that a rank number a file makes
/// up cannot size the job's rank table to gigabytes. Readers refuse more, naming the file.
inline constexpr int max_trace_ranks = 1 << 18;

/// What compute work an event is, for the compute breakdown. `mixed`: compute whose split into
/// attention and linear work the source does not give (a Megatron forward-compute timer);
/// `memory`: a memory copy or set (HTA's MEMORY kernels: busy, but not compute).
enum class work_class : std::uint8_t { none = 0, attention, linear, other, mixed, memory };
std::string_view work_class_name(work_class w) noexcept;

/// One event, or several merged (count > 1): then start_ns is the first one's start, dur_ns the
/// durations summed, and start_sum_ns the sum of (start - start_ns) over the merged events, so
/// that their mean start and mean end stay known (clock alignment and last arrivals use them).
struct job_event {
    std::int64_t start_ns = 0;
    std::int64_t dur_ns = 0;
    std::int64_t start_sum_ns = 0; ///< merged events: sum of their starts after start_ns
    double bytes = 0.0;            ///< payload of a transfer or collective; 0: unknown
    std::int64_t seq = -1;   ///< collective sequence number in its group; -1: matched by order
    std::int32_t name = 0;   ///< index into job_trace::names
    std::int32_t step = -1;  ///< -1: outside every step
    std::int32_t group = -1; ///< collectives and transfers: index into job_trace::groups
    std::int32_t stream = 0; ///< the source's stream or thread (Kineto: the CUDA stream)
    std::int32_t count = 1;  ///< events merged into this record
    std::int16_t micro_batch = -1;
    std::int16_t virtual_stage = -1;
    runtime::lane where = runtime::lane::compute;
    runtime::event_kind kind = runtime::event_kind::compute;
    runtime::phase ph = runtime::phase::none;
    work_class work = work_class::none;

    /// The end of a single event (of a merged record: first start plus summed durations, which
    /// is no instant on the timeline; use mean_end_ns()).
    [[nodiscard]] std::int64_t end_ns() const noexcept { return start_ns + dur_ns; }
    [[nodiscard]] std::int64_t mean_start_ns() const noexcept {
        return start_ns + (count > 1 ? start_sum_ns / count : 0);
    }
    [[nodiscard]] std::int64_t mean_end_ns() const noexcept {
        return count > 1 ? start_ns + (start_sum_ns + dur_ns) / count : start_ns + dur_ns;
    }
    [[nodiscard]] bool is_comm() const noexcept {
        return kind == runtime::event_kind::collective || kind == runtime::event_kind::send ||
               kind == runtime::event_kind::recv;
    }
};

/// A communicator: the ranks it spans and the lane its traffic is counted on.
struct comm_group {
    std::string name; ///< "tp group 0", or the source's process-group name
    runtime::lane where = runtime::lane::dp;
    std::vector<int> ranks; ///< ascending; empty when the source did not say
};

/// A problem in the input that analysis worked around: the file and place, and what was done.
struct ingest_warning {
    std::string where; ///< "rank3.json.gz:byte 18204", "rank 5", "step 12"
    std::string message;
};

/// How the ranks' clocks were put on one time line (profiler/ingest/clock_align.hpp).
struct clock_alignment {
    std::string method;                  ///< "collective ends", "given offsets", "none"
    std::vector<std::int64_t> offset_ns; ///< per rank: added to its timestamps
    std::int64_t max_abs_offset_ns = 0;
    std::int64_t matched_collectives = 0;
    std::int64_t p2p_links = 0; ///< rank groups joined through point-to-point transfers
    /// Spread of collective ends (max - min over members) after alignment: median and p90 over
    /// the matched collectives. Near zero when clocks agree.
    std::int64_t residual_median_ns = 0;
    std::int64_t residual_p90_ns = 0;
    /// The first rank of each group of ranks that shares no collective with the first group
    /// (kept on its recorded clock).
    std::vector<int> unaligned_ranks;
};

/// Time on one communication lane of a rank in a step. `group` and `collective` let the lane be
/// settled once the layout is known (a collective's lane comes from its group's ranks).
struct comm_time {
    std::int32_t group = -1;
    runtime::lane where = runtime::lane::dp;
    bool collective = false;
    std::int64_t total_ns = 0;
    std::int64_t exposed_ns = 0; ///< while no compute ran on the rank
};

/// A rank's time in one step, computed from its events as they are read (every event, before
/// any merging). Compute by class sums durations; `compute_busy_ns` is the union of compute
/// intervals (memory copies are not compute), `busy_ns` the union of every interval off the host
/// lane, `first_ns`/`last_ns` the rank's first start and last end (any lane), `busy_first_ns`/
/// `busy_last_ns` those off the host lane. Times on the recorded clock until the clocks are
/// aligned, then on the job clock.
struct step_summary {
    std::int64_t step = -1;
    std::int64_t first_ns = 0, last_ns = 0;
    std::int64_t busy_first_ns = 0, busy_last_ns = 0;
    std::int64_t attention_ns = 0, linear_ns = 0, other_ns = 0, unsplit_ns = 0, memory_ns = 0;
    std::int64_t compute_busy_ns = 0;
    std::int64_t busy_ns = 0;
    std::vector<comm_time> comm;
};

struct rank_trace {
    bool present = false;
    std::string file;                    ///< where its events came from
    std::vector<job_event> events;       ///< sorted by start (merged records: by first start)
    std::vector<step_summary> summaries; ///< per step it has events in, by step
    std::int64_t events_read = 0;        ///< events the source held (before any merging)
    std::int64_t clock_offset_ns = 0;    ///< added to the source's timestamps by the alignment
    bool truncated = false;              ///< the file ended early: its last step is incomplete
    std::int64_t incomplete_step = -1;   ///< when truncated: the step the cut fell in
};

/// Interns names: every distinct event name is stored once.
class name_table {
public:
    std::int32_t intern(std::string_view name);
    [[nodiscard]] const std::string& operator[](std::int32_t id) const {
        return m_names[static_cast<std::size_t>(id)];
    }
    [[nodiscard]] std::size_t size() const noexcept { return m_names.size(); }

private:
    std::vector<std::string> m_names;
    std::unordered_map<std::string, std::int32_t> m_ids;
};

/// What one input holds (a file, or one rank file of a wlbtune directory), read on its own so
/// that inputs can be read on several threads: its names and groups are its own (ids local to
/// the part), its ranks are told by number, by coordinates, or by the part's place among the
/// inputs. job_trace::absorb merges parts in input order.
struct trace_part {
    struct entry {
        int rank = -1; ///< -1: told by `where`, or (where unknown) by the part's place
        /// Coordinates the source's names give (axes it does not name: -1); with rank -1 the
        /// rank follows from them and the layout once every input is read.
        runtime::coords where{-1, -1, -1, -1};
        std::string label;       ///< how the source names it ("process 3, thread 7")
        std::string no_rank_why; ///< rank and coordinates unknown: what was looked for
        rank_trace trace;
    };
    struct warning {
        ingest_warning w;
        std::string kind;
    };

    name_table names;
    std::vector<comm_group> groups;
    std::vector<entry> ranks;
    std::vector<warning> warnings;
    std::map<std::string, int> dropped_warnings; ///< per kind: warnings over the limit
    std::vector<std::string> files;
    std::int64_t input_bytes = 0;
    std::string format;                      ///< "wlbtune", "kineto", ... (set by the reader)
    std::string left_out = "its events are"; ///< "... left out", of a rank read twice
    std::string source_layout;
    std::string source_order;
    int source_world_size = 0;
    std::map<int, runtime::coords> rank_coords;
    bool per_layer_events = true;
    bool tp_replicated = false;
    std::string note;
    std::string source;
    std::vector<std::string> command_line; ///< the command that wrote the trace (wlbtune's own)
    /// Timers outside the vocabulary, and how often each occurred: summarized in one warning.
    std::map<std::string, std::int64_t> unknown_timers;

    std::int32_t group_of(runtime::lane where, std::vector<int> members, std::string_view name);
    void warn(std::string where, std::string message, std::string_view kind = {});
    /// A new rank entry (rank -1: to be told by coordinates or the part's place).
    entry& add_rank(int rank, std::string file);

private:
    std::unordered_map<std::string, std::int32_t> m_group_ids;
    std::map<std::string, int, std::less<>> m_warn_counts;
};

struct job_trace {
    std::string format; ///< "wlbtune", "kineto", "megatron", "nsys", "perfetto"
    runtime::layout job_layout{1, 1, 1, 1};
    std::string layout_source; ///< "--layout", "trace manifest", "rank metadata", ...
    /// True when TP peers carry copies of their TP rank 0's events (simulated traces).
    bool tp_replicated = false;
    /// True when compute comes one slice per transformer layer (wlbtune traces); false when a
    /// pass over a chunk is one timer or many kernels (timers, annotated Kineto).
    bool per_layer_events = true;
    std::string note;
    std::string source; ///< a wlbtune trace's source: "simulated", "cpu", ...
    name_table names;
    std::vector<comm_group> groups;
    std::vector<rank_trace> ranks;   ///< index = global rank; size = world size
    std::vector<std::int64_t> steps; ///< step ids seen in any rank, ascending
    /// Where only some steps are analyzed: "steps 1-5 of 0-5 (--steps 1:)"; empty: all.
    std::string step_selection;
    std::vector<ingest_warning> warnings;
    clock_alignment clock;
    /// The packed and sharded batches of the steps, where the trace records them (wlbtune's own
    /// runs and simulations); empty otherwise.
    std::vector<runtime::sharded_step> batches;
    std::string batches_file;       ///< where they came from (empty: in memory or none)
    std::vector<std::string> files; ///< every input file read
    std::int64_t input_bytes = 0;   ///< bytes read from those files (before decompression)

    // What the sources said about the job, settled into job_layout by ingest().
    std::map<int, runtime::coords> rank_coords; ///< coordinates a rank's metadata gave
    std::string source_layout;                  ///< a layout spec found in the input
    std::string source_order;                   ///< its axis order
    int source_world_size = 0;                  ///< a world size found in the input
    /// The command that wrote a wlbtune trace (its manifest says), argv with argv[0] its file
    /// name ("wlbtune"); empty when unknown.
    std::vector<std::string> command_line;
    /// Ranks told by their coordinates only (timer timelines that name "PP rank 1, TP rank 0"
    /// and the DP rank of their process): placed once the layout is settled.
    std::vector<trace_part::entry> pending;
    /// Timers outside the vocabulary over every input: name -> occurrences.
    std::map<std::string, std::int64_t> unknown_timers;

    /// Merges a part read on its own: names and groups re-numbered, ranks claimed (a rank read
    /// before: warning, left out), a rank told by neither number nor coordinates taken as the
    /// next rank after those read so far (its place among the inputs, with a warning), ranks
    /// told by coordinates kept in `pending`.
    void absorb(trace_part&& part);

    /// The group with these ranks on this lane (created when new). `name` labels a new group.
    std::int32_t group_of(runtime::lane where, std::vector<int> members, std::string_view name);
    /// The group of `rank` along the layout's axis that `where` stands for: tp, cp, pp (its
    /// pipeline), dp (the DP x CP group that reduces gradients, as the step plan).
    std::int32_t layout_group(runtime::lane where, int rank);
    /// Adds a warning; at most `max_warnings_per_kind` of one `kind` are kept, then one line
    /// counting the rest.
    void warn(std::string where, std::string message, std::string_view kind = {});
    /// Marks `rank` as read from `file` (the rank list grows to hold it) and returns its trace;
    /// nullptr, with a warning that `what` in `file` is left out, when another file had it.
    rank_trace* claim_rank(int rank, const std::string& file, std::string_view what);
    /// Places a rank's trace (moved in) as `rank`; false, with a warning, when another input
    /// had it.
    bool place_rank(int rank, rank_trace&& trace, std::string_view what);
    void finish_warnings();

    /// Events read from the sources (before merging).
    [[nodiscard]] std::size_t event_count() const noexcept;
    /// Records held (merged events count once).
    [[nodiscard]] std::size_t record_count() const noexcept;

private:
    std::unordered_map<std::string, std::int32_t> m_group_ids;
    std::unordered_map<std::string, int> m_warn_counts;
};

inline constexpr int max_warnings_per_kind = 20;

/// The events of each rank grouped by step (indices into the rank's events, in start order):
/// built once in O(events), read by every analysis.
class step_index {
public:
    explicit step_index(const job_trace& job);
    [[nodiscard]] std::span<const std::uint32_t> events(int rank, std::int64_t step) const;
    /// Position of `step` in job.steps; -1 when absent.
    [[nodiscard]] int step_position(std::int64_t step) const;

private:
    std::vector<std::int64_t> m_steps;
    std::vector<std::vector<std::uint32_t>> m_order;   // per rank
    std::vector<std::vector<std::uint32_t>> m_offsets; // per rank: steps + 1 offsets
};

} // namespace wlb::profiler
