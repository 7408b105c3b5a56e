#include "profiler/capture/inject/trace_lines.hpp"

#include <nlohmann/json.hpp>

namespace wlb::profiler {
namespace {

const char* lane_text(runtime::lane l) {
    constexpr const char* names[] = {"compute", "tp", "cp", "pp", "dp", "host"};
    return names[static_cast<int>(l)];
}
const char* kind_text(runtime::event_kind k) {
    constexpr const char* names[] = {"compute", "collective", "send", "recv", "other"};
    return names[static_cast<int>(k)];
}
const char* phase_text(runtime::phase p) {
    constexpr const char* names[] = {"none", "fwd", "bwd", "optimizer"};
    return names[static_cast<int>(p)];
}

} // namespace

std::string trace_line(const runtime::trace_event& e) {
    nlohmann::json j = {{"rank", e.rank},           {"lane", lane_text(e.where)},
                        {"name", e.name},           {"kind", kind_text(e.kind)},
                        {"start_ns", e.start_ns},   {"dur_ns", e.dur_ns},
                        {"step", e.step},           {"micro_batch", e.micro_batch},
                        {"stage", e.stage},         {"virtual_stage", e.virtual_stage},
                        {"phase", phase_text(e.ph)}};
    if (e.bytes)
        j["bytes"] = *e.bytes;
    if (e.flops)
        j["flops"] = *e.flops;
    if (e.flow_id != 0)
        j["flow_id"] = e.flow_id;
    // A kernel name is bytes from the driver: invalid UTF-8 is replaced, never thrown on.
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

} // namespace wlb::profiler
