// The capture backend seam (style.md: kineto's CuptiActivityApi, a virtual interface a test
// replaces to replay hand-made records). The real backend is CUPTI
// (profiler/capture/cuda/cupti_activity_source.cpp); tests use
// tests/support/fake_activity_source.hpp. Every method may throw:
// profiler/capture/capture_session.hpp turns a failure into a warning and lets the run go on
// without capture.
#pragma once

#include "profiler/capture/activity.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace wlb::profiler {

class activity_source {
public:
    activity_source() = default;
    virtual ~activity_source() = default;
    activity_source(const activity_source&) = delete;
    activity_source& operator=(const activity_source&) = delete;

    [[nodiscard]] virtual std::string_view name() const noexcept = 0;
    virtual void start() = 0;
    /// Stops recording and flushes: the next drain() holds every record of the work so far.
    virtual void stop() = 0;
    /// Delivers the records completed so far to the next drain() (work still running stays).
    virtual void flush() = 0;
    /// Moves out the records and losses gathered since the last drain.
    [[nodiscard]] virtual capture_batch drain() = 0;
    /// API calls of the calling thread carry `context_id` until the matching pop_context().
    virtual void push_context(std::uint64_t context_id) = 0;
    virtual void pop_context() = 0;
    /// The clock the records use, in nanoseconds.
    [[nodiscard]] virtual std::int64_t now_ns() = 0;
    /// The id under which records name a stream (`stream` is a cudaStream_t).
    [[nodiscard]] virtual std::uint32_t stream_id(void* stream) = 0;
};

struct cupti_options {
    std::size_t buffer_bytes = std::size_t{4} << 20; ///< one activity buffer
    int max_buffers = 16; ///< buffers alive at once (64 MiB by default); more are refused
};

/// CUPTI when the build has CUDA and the process a device; otherwise no source and the reason
/// (a build without CUDA, no device, CUPTI refusing to start, a second source in the process).
struct source_result {
    std::unique_ptr<activity_source> source;
    std::string reason;
};
[[nodiscard]] source_result make_cupti_source(const cupti_options& options);

} // namespace wlb::profiler
