// The CUDA capture backends' factories in a build without CUDA: no CUPTI, no NVTX.
#include "profiler/capture/activity_source.hpp"
#include "profiler/capture/capture_session.hpp"
#include "profiler/capture/range_marker.hpp"
#include "profiler/capture/run_capture.hpp"

namespace wlb::profiler {

source_result make_cupti_source(const cupti_options& /*options*/) {
    return {nullptr, "this wlbtune was built without CUDA, so it has no CUPTI capture"};
}

std::unique_ptr<range_marker> make_nvtx_marker() {
    return nullptr;
}

std::unique_ptr<capture_session> capture_session::make_default(int rank,
                                                               const cupti_options& /*o*/) {
    return std::make_unique<capture_session>(
        rank, nullptr, nullptr, "this wlbtune was built without CUDA, so it has no CUPTI capture");
}

std::shared_ptr<run_capture> run_capture::make_default(const cupti_options& o) {
    return std::make_shared<run_capture>(make_cupti_source(o), nullptr);
}

} // namespace wlb::profiler
