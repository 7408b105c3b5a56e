// The default capture session of a CUDA build: CUPTI and NVTX
// (profiler/capture/capture_session.hpp).
#include "profiler/capture/capture_session.hpp"
#include "profiler/capture/run_capture.hpp"

namespace wlb::profiler {

std::unique_ptr<capture_session> capture_session::make_default(int rank, const cupti_options& o) {
    auto made = make_cupti_source(o);
    return std::make_unique<capture_session>(rank, std::move(made.source), make_nvtx_marker(),
                                             made.reason);
}

std::shared_ptr<run_capture> run_capture::make_default(const cupti_options& o) {
    return std::make_shared<run_capture>(make_cupti_source(o), &make_nvtx_marker);
}

} // namespace wlb::profiler
