#include "runtime/trace/step_observer.hpp"

namespace wlb::runtime {

std::string_view op_lane_name(op_lane lane) noexcept {
    switch (lane) {
    case op_lane::compute:
        return "compute";
    case op_lane::tp:
        return "tp";
    case op_lane::cp:
        return "cp";
    case op_lane::pp:
        return "pp";
    case op_lane::dp:
        return "dp";
    case op_lane::host:
        return "host";
    }
    return "compute";
}

std::string_view op_phase_name(op_phase phase) noexcept {
    switch (phase) {
    case op_phase::forward:
        return "fwd";
    case op_phase::backward:
        return "bwd";
    case op_phase::optimizer:
        return "optimizer";
    }
    return "fwd";
}

} // namespace wlb::runtime
