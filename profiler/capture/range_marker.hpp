// NVTX ranges for external tools (Nsight Systems, any NVTX injection): the capture session
// mirrors every range it opens as an NVTX push/pop in the `wlbtune` domain, one NVTX category per
// range level (step, micro-batch, stage, phase, layer). The capture itself does not depend on
// NVTX injection: it records its ranges on its own clock (profiler/capture/capture_session.hpp).
#pragma once

#include "profiler/capture/activity.hpp"

#include <memory>
#include <string_view>

namespace wlb::profiler {

class range_marker {
public:
    range_marker() = default;
    virtual ~range_marker() = default;
    range_marker(const range_marker&) = delete;
    range_marker& operator=(const range_marker&) = delete;
    virtual void push(range_level level, std::string_view name) = 0;
    virtual void pop() = 0;
};

/// NVTX in the `wlbtune` domain (profiler/capture/cuda/nvtx_marker.cpp); nullptr in a build without
/// CUDA, which has no NVTX headers.
[[nodiscard]] std::unique_ptr<range_marker> make_nvtx_marker();

} // namespace wlb::profiler
