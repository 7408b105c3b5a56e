// What a device capture backend records (design.md section 2, "CUDA+NCCL -> trace (profiler
// capture)"): device activity (kernels, memory copies and sets, synchronization), the links
// from API calls to the range context they were issued in, and the ranges themselves (step,
// micro-batch, stage, phase, layer; NVTX ranges in the `wlbtune` domain). Plain data: CUPTI
// fills it (profiler/capture/cuda/cupti_activity_source.cpp) and tests fill it by hand; both become
// the trace model (runtime/trace/trace.hpp) through profiler/capture/activity_trace.hpp.
#pragma once

#include "runtime/trace/trace.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wlb::profiler {

enum class activity_kind : std::uint8_t { kernel, memcpy, memset, synchronization };
[[nodiscard]] std::string_view activity_kind_name(activity_kind k) noexcept;

struct device_activity {
    activity_kind kind = activity_kind::kernel;
    /// Kernel: its name (demangled by the backend); memcpy: "memcpy HtoD", ...; memset:
    /// "memset"; synchronization: "sync stream", "sync event", "sync context", "stream wait
    /// event".
    std::string name;
    std::int64_t start_ns = 0; ///< the capture clock (CUPTI: cuptiGetTimestamp), nanoseconds
    std::int64_t end_ns = 0;
    std::uint32_t device = 0;
    std::uint32_t stream = 0;         ///< the capture's stream id (0 for context-wide syncs)
    std::uint32_t correlation_id = 0; ///< the API call that issued it; 0 when unknown
    std::int64_t bytes = 0;           ///< memcpy, memset
};

/// The API call `correlation_id` was issued while range context `context_id` was current
/// (CUPTI external correlation records).
struct context_link {
    std::uint32_t correlation_id = 0;
    std::uint64_t context_id = 0;
};

/// Range levels, outermost first.
enum class range_level : std::uint8_t { step, micro_batch, stage, phase, layer };
inline constexpr int range_level_count = 5;
[[nodiscard]] std::string_view range_level_name(range_level l) noexcept;

/// What the open ranges say at one moment: the innermost value of each level (-1 / none when
/// no range of that level is open).
struct range_context {
    std::int64_t step = -1;
    int micro_batch = -1;
    int stage = -1;
    int virtual_stage = -1;
    runtime::phase ph = runtime::phase::none;
    int layer = -1;
    friend bool operator==(const range_context&, const range_context&) = default;
};

struct range_record {
    range_level level = range_level::step;
    std::string name; ///< "step 3", "micro-batch 1", "stage 2.0", "fwd", "layer 7"
    std::int64_t start_ns = 0;
    std::int64_t end_ns = 0;
    std::uint64_t context_id = 0; ///< the context while it was open (itself included)
};

/// What a capture lost; reported with the trace, never silently dropped.
struct capture_losses {
    std::uint64_t dropped_records = 0;     ///< records the backend itself lost (CUPTI's count)
    std::uint64_t buffers_refused = 0;     ///< buffer requests the bounded pool refused
    std::uint64_t unsupported_records = 0; ///< records of kinds this converter does not read
    std::vector<std::string> warnings;     ///< backend failures: warned, recorded, run went on
};

/// Everything one drain of a backend returns.
struct capture_batch {
    std::vector<device_activity> activities;
    std::vector<context_link> links;
    std::vector<range_record> ranges;
    std::vector<std::pair<std::uint64_t, range_context>> contexts; ///< id -> context
    capture_losses losses;

    /// Appends `other` (records, links, ranges, contexts, losses).
    void append(capture_batch&& other);
};

} // namespace wlb::profiler
