#include "runtime/step_observer.hpp"

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
    }
    return "compute";
}

std::string_view op_phase_name(op_phase phase) noexcept {
    return phase == op_phase::forward ? "fwd" : "bwd";
}

} // namespace wlb::runtime
