// One rank's device capture (design.md: CUPTI activity + NVTX ranges on GPUs): the range stack
// (step > micro-batch > stage > phase > layer), the capture backend behind the seam of
// profiler/capture/activity_source.hpp, the NVTX mirror of the ranges, and the conversion of
// everything captured into trace events with a capture report.
//
// Best effort (style.md, "Errors"): a backend that is unavailable or throws is reported once on
// stderr as a warning, recorded in the report, and switched off; ranges, the run and the report
// go on. Losses (records dropped by the backend, buffers the bounded pool refused) are counted
// and reported, never silent.
//
// Ranges: each open range defines a context (the innermost value of every level); the session
// gives each context an id, pushes it to the backend (CUPTI external correlation) so every CUDA
// call issued inside is linked to it, and records the range on the backend's clock. Open and
// close ranges on the thread that issues the CUDA work; ranges nest (close the innermost first).
#pragma once

#include "profiler/capture/activity.hpp"
#include "profiler/capture/activity_source.hpp"
#include "profiler/capture/activity_trace.hpp"
#include "profiler/capture/range_marker.hpp"
#include "runtime/trace/trace.hpp"

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace wlb::profiler {

struct capture_result {
    std::vector<runtime::trace_event> events; ///< this rank's, in start order
    conversion_stats stats;
    capture_losses losses;
    nlohmann::json report; ///< capture_report_json: goes into the trace manifest
};

class capture_session;

/// Closes its range when destroyed.
class [[nodiscard]] scoped_range {
public:
    explicit scoped_range(capture_session& session) : m_session(&session) {}
    ~scoped_range();
    scoped_range(scoped_range&& other) noexcept : m_session(other.m_session) {
        other.m_session = nullptr;
    }
    scoped_range(const scoped_range&) = delete;
    scoped_range& operator=(const scoped_range&) = delete;
    scoped_range& operator=(scoped_range&&) = delete;

private:
    capture_session* m_session;
};

class capture_session {
public:
    /// `source` may be null: capture is off and `unavailable_reason` becomes the report's
    /// warning, printed on stderr unless `print_unavailable` is false (the other ranks of a
    /// process whose first rank already said it). `marker` may be null (no NVTX).
    capture_session(int rank, std::unique_ptr<activity_source> source,
                    std::unique_ptr<range_marker> marker, std::string unavailable_reason = {},
                    bool print_unavailable = true);
    ~capture_session();
    capture_session(const capture_session&) = delete;
    capture_session& operator=(const capture_session&) = delete;

    /// CUPTI (make_cupti_source) and NVTX (make_nvtx_marker), whatever of them this build and
    /// machine have. Defined with them in the wlb::cuda target (profiler/capture/cuda/ or
    /// no_cuda/).
    [[nodiscard]] static std::unique_ptr<capture_session> make_default(int rank,
                                                                       const cupti_options& o = {});

    void start();
    /// Whether a backend is recording (false once it failed or when there was none).
    [[nodiscard]] bool capturing() const noexcept { return m_source != nullptr && m_started; }

    /// Gives a CUDA stream (cudaStream_t) a lane: the executor's compute stream and each
    /// communicator's stream. Streams never registered are compute.
    void register_stream(void* stream, runtime::lane lane);
    /// The same by the backend's stream id (what tests with hand-made records use).
    void register_stream_id(std::uint32_t stream_id, runtime::lane lane);

    scoped_range step(std::int64_t step);
    scoped_range micro_batch(int micro_batch);
    scoped_range stage(int stage, int virtual_stage = 0);
    scoped_range phase(runtime::phase ph);
    scoped_range layer(int layer);
    /// Closes the innermost open range (scoped_range calls it).
    void end_range();
    [[nodiscard]] const range_context& context() const noexcept;

    /// Stops the backend, drains it and converts everything into this rank's trace events;
    /// times are shifted by origin_ns. Ranges still open are closed first.
    [[nodiscard]] capture_result finish(std::int64_t origin_ns = 0);

    /// The backend's clock (steady_clock when there is none).
    [[nodiscard]] std::int64_t now_ns();

private:
    void open(range_level level, std::string name, const range_context& ctx);
    /// Warns once on stderr, records the failure, switches the backend off.
    void fail(const std::string& what) noexcept;
    template <typename F>
    void guarded(const char* what, F&& f) noexcept;

    struct open_range {
        range_record record;
    };
    int m_rank;
    std::unique_ptr<activity_source> m_source;
    std::unique_ptr<range_marker> m_marker;
    bool m_started = false;
    std::vector<open_range> m_stack;
    std::vector<range_context> m_contexts; ///< index + 1 = context id
    capture_batch m_collected;             ///< ranges, contexts, warnings, drained records
    std::unordered_map<std::uint32_t, runtime::lane> m_stream_lanes;
    std::string m_source_name = "none";
};

} // namespace wlb::profiler
