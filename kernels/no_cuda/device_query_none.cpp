// Device query for builds without CUDA (WLB_CUDA=OFF or no toolkit found).
#include "kernels/device_query.hpp"

namespace wlb::kernels {

device_report query_devices() {
    device_report report;
    report.reason = "this build has no CUDA support (configured with WLB_CUDA=OFF or no toolkit)";
    return report;
}

} // namespace wlb::kernels
