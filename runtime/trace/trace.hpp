// The trace contract (design.md section 4, "Trace"): per-rank events that every source
// produces (the simulator, CPU and CUDA capture, Kineto and timer-timeline ingestion) and every
// analysis consumes.
//
// On disk (schema "wlbtune.trace/1") a trace is a directory that streams:
//   manifest.json       {"schema": "wlbtune.trace/1", provenance, "source", "layout",
//                        "world_size", "steps", "ranks": [{"rank", "file", "events"}], ...}
//   rank_00005.jsonl    one event per line, in start order, for global rank 5
//   batches.json        optional (manifest "batches"): the steps' packed and sharded batches,
//                       wlbtune.sharded_batch/1, written by the simulator and `wlbtune run`
// so that a job's ranks write their own files and a reader holds one rank at a time.
#pragma once

#include "runtime/parallel/batch.hpp"
#include "runtime/parallel/layout.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wlb::runtime {

/// Where an event ran: one lane per engine or communicator of a rank. A lane never holds two
/// overlapping events of the same rank.
enum class lane : std::uint8_t { compute = 0, tp, cp, pp, dp, host };
inline constexpr int lane_count = 6;
std::string_view lane_name(lane l) noexcept;
std::optional<lane> lane_from_name(std::string_view name) noexcept;

/// What an event is: compute work, a collective (time inside it, waiting included), one side
/// of a point-to-point transfer, or anything else (host work, idle markers of other sources).
enum class event_kind : std::uint8_t { compute = 0, collective, send, recv, other };
std::string_view event_kind_name(event_kind k) noexcept;
std::optional<event_kind> event_kind_from_name(std::string_view name) noexcept;

enum class phase : std::uint8_t { none = 0, fwd, bwd, optimizer };
std::string_view phase_name(phase p) noexcept;
std::optional<phase> phase_from_name(std::string_view name) noexcept;

struct trace_event {
    int rank = 0;
    lane where = lane::compute;
    event_kind kind = event_kind::compute;
    phase ph = phase::none;
    std::string name;
    std::int64_t start_ns = 0;
    std::int64_t dur_ns = 0;
    std::int64_t step = 0;
    int micro_batch = -1;   ///< -1: not tied to one micro-batch
    int stage = -1;         ///< pipeline rank
    int virtual_stage = -1; ///< model chunk on that rank
    std::optional<double> bytes;
    std::optional<double> flops;
    /// Links the two sides of a point-to-point transfer: a send and its receive carry the same
    /// id (0: none). Perfetto draws it as a flow arrow send -> receive.
    std::int64_t flow_id = 0;

    [[nodiscard]] std::int64_t end_ns() const noexcept { return start_ns + dur_ns; }
};

nlohmann::json to_json(const trace_event& e);
/// `where` names the file and line for errors ("rank_00005.jsonl:17").
trace_event trace_event_from_json(const nlohmann::json& j, std::string_view where);

/// Everything about a trace but its events.
struct trace_meta {
    std::string source; ///< "simulated", "cuda", "cpu", "kineto", ...
    layout job_layout{1, 1, 1, 1};
    std::int64_t steps = 0;
    /// True when TP peers were simulated once and their events replicated (the simulator).
    bool tp_replicated = false;
    std::string note; ///< free text, e.g. "simulated: durations from the cost model"
    /// The file in the directory that holds the job's packed and sharded batches
    /// (wlbtune.sharded_batch/1, runtime/trace/sharded_batch_io.hpp), so that analysis can set the
    /// time lost against the work the batches predict. Empty: not recorded.
    std::string batches;
};

/// A whole trace in memory, events grouped by rank (index = rank), each rank's in start order.
struct trace {
    trace_meta meta;
    std::vector<std::vector<trace_event>> ranks;
    /// The steps' batches (may be empty); write_trace_dir records them in the directory.
    std::vector<sharded_step> batches;
};

inline constexpr std::string_view trace_schema = "wlbtune.trace/1";

/// Writes `t` as a trace directory (created if missing). Every file is written atomically.
/// `extra` (an object, may be null) is merged into the manifest (e.g. provenance).
void write_trace_dir(const std::string& dir, const trace& t, const nlohmann::json* extra = nullptr);

/// The two halves of write_trace_dir, for a job whose ranks write their own files (the real
/// executors): every rank writes its events, then one rank writes the manifest once every
/// rank's file is complete. The directory is created if missing.
void write_trace_rank_file(const std::string& dir, int rank,
                           const std::vector<trace_event>& events);
/// Writes the job's batches into the directory as `trace_batches_file` (atomically); the
/// manifest names it when trace_meta::batches is that name.
void write_trace_batches(const std::string& dir, const std::vector<sharded_step>& steps);
inline constexpr std::string_view trace_batches_file = "batches.json";
/// `events_per_rank[r]` is the number of events rank r wrote (its file is listed for every r).
void write_trace_manifest(const std::string& dir, const trace_meta& meta,
                          const std::vector<std::int64_t>& events_per_rank,
                          const nlohmann::json* extra = nullptr);

/// Reads a trace directory one rank at a time: open() reads and checks the manifest; then
/// read_rank() streams one rank's file line by line into the callback. Throws
/// wlb::input_error naming the file and line on anything malformed.
class trace_reader {
public:
    explicit trace_reader(std::string dir);
    [[nodiscard]] const trace_meta& meta() const noexcept { return m_meta; }
    [[nodiscard]] const std::vector<int>& ranks() const noexcept { return m_ranks; }
    void read_rank(int rank, const std::function<void(trace_event&&)>& sink) const;
    /// The path of `rank`'s file as the manifest names it (empty when it names none).
    [[nodiscard]] std::string rank_file(int rank) const;
    /// Every rank into memory.
    [[nodiscard]] trace read_all() const;
    /// The batches the manifest names (empty when it names none). Throws wlb::input_error
    /// naming the file and place when that file is missing or malformed.
    [[nodiscard]] std::vector<sharded_step> read_batches() const;

private:
    std::string m_dir;
    trace_meta m_meta;
    std::vector<int> m_ranks;
    std::vector<std::string> m_files; // index = rank; empty when the rank has no file
};

} // namespace wlb::runtime
