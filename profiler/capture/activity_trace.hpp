// Captured device activity -> the trace model (runtime/trace/trace.hpp, wlbtune.trace/1). Pure host
// code: unit tests feed it hand-made records.
//
// Rules:
// - lane: a registered stream's lane (the executor registers its compute stream and each
//   communicator's stream as tp, cp, pp or dp); other streams are compute; synchronization is
//   host work (lane host).
// - kind: NCCL kernels (names starting with "nccl") are collectives, or send / recv for NCCL's
//   point-to-point kernels ("SendRecv" and "Recv": recv; "Send": send); other kernels are
//   compute; copies, sets and synchronization are other.
// - attribution: an activity's correlation id leads, through the context links, to the range
//   context its API call was issued in (step, micro-batch, stage, virtual stage, phase). An
//   activity without a link takes the step of the last step range that started before it and
//   is counted unattributed.
// - a lane never holds two overlapping events (runtime/trace/trace.hpp): concurrent kernels of two
//   streams of one lane are serialized by moving the later start to the earlier end; the moves
//   are counted and their time summed in the report.
// - times are shifted by origin_ns (the job's time zero); events come out in start order.
#pragma once

#include "profiler/capture/activity.hpp"
#include "runtime/trace/trace.hpp"

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace wlb::profiler {

struct conversion_options {
    int rank = 0;
    std::int64_t origin_ns = 0; ///< subtracted from every timestamp
    std::unordered_map<std::uint32_t, runtime::lane> stream_lanes; ///< stream id -> lane
};

struct conversion_stats {
    std::uint64_t kernels = 0;
    std::uint64_t memcpys = 0;
    std::uint64_t memsets = 0;
    std::uint64_t syncs = 0;
    std::uint64_t unattributed = 0;     ///< no link to a range context
    std::uint64_t overlaps_clipped = 0; ///< starts moved to keep a lane free of overlaps
    std::int64_t clipped_ns = 0;        ///< time those moves removed
    std::uint64_t invalid = 0;          ///< records ending before they start: left out
};

[[nodiscard]] std::vector<runtime::trace_event>
activities_to_trace(const capture_batch& batch, const conversion_options& options,
                    conversion_stats& stats);

/// A kernel name as traces show it: the demangled name without a leading return type ("void ")
/// and without its parameter list.
[[nodiscard]] std::string short_kernel_name(std::string_view name);

/// {"source", "records": {kernels, memcpys, memsets, syncs, ranges}, "attribution":
/// {unattributed}, "overlaps": {clipped, clipped_ns}, "losses": {dropped_records,
/// buffers_refused, unsupported_records, invalid_records}, "warnings": [...]}: the capture part
/// of a trace manifest.
[[nodiscard]] nlohmann::json capture_report_json(std::string_view source,
                                                 const conversion_stats& stats,
                                                 const capture_batch& batch);

} // namespace wlb::profiler
