// The range seam of a device capture (design.md: CUPTI activity + NVTX ranges on GPUs): the device
// step opens nested ranges, step > micro-batch > stage > phase > layer, on the thread that
// issues the device work, so a capture backend can tie every kernel, copy and NCCL kernel
// issued inside to them and mirror them as NVTX ranges for Nsight Systems. profiler/capture
// implements it over its capture session; runtime/ never includes profiler/.
#pragma once

#include "runtime/trace/trace.hpp"

#include <cstdint>

namespace wlb::runtime {

class capture_ranges {
public:
    capture_ranges() = default;
    virtual ~capture_ranges() = default;
    capture_ranges(const capture_ranges&) = delete;
    capture_ranges& operator=(const capture_ranges&) = delete;

    virtual void step(std::int64_t step) = 0;
    virtual void micro_batch(int micro_batch) = 0;
    virtual void stage(int stage, int virtual_stage) = 0;
    virtual void phase(runtime::phase ph) = 0;
    virtual void layer(int layer) = 0;
    /// Closes the innermost open range.
    virtual void end() = 0;
    /// Gives a stream (cudaStream_t) a lane: the compute stream and each group's stream.
    virtual void register_stream(void* stream, lane where) = 0;
};

/// Opens a range on construction (through `open`) and closes it on destruction; a null capture
/// does nothing.
class [[nodiscard]] capture_scope {
public:
    template <typename Open>
    capture_scope(capture_ranges* c, Open&& open) : m_capture(c) {
        if (m_capture != nullptr)
            open(*m_capture);
    }
    ~capture_scope() {
        if (m_capture != nullptr)
            m_capture->end();
    }
    capture_scope(const capture_scope&) = delete;
    capture_scope& operator=(const capture_scope&) = delete;

private:
    capture_ranges* m_capture;
};

} // namespace wlb::runtime
