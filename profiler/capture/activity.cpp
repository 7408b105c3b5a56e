#include "profiler/capture/activity.hpp"

#include <iterator>

namespace wlb::profiler {

std::string_view activity_kind_name(activity_kind k) noexcept {
    switch (k) {
    case activity_kind::kernel:
        return "kernel";
    case activity_kind::memcpy:
        return "memcpy";
    case activity_kind::memset:
        return "memset";
    case activity_kind::synchronization:
        return "synchronization";
    }
    return "unknown";
}

std::string_view range_level_name(range_level l) noexcept {
    switch (l) {
    case range_level::step:
        return "step";
    case range_level::micro_batch:
        return "micro-batch";
    case range_level::stage:
        return "stage";
    case range_level::phase:
        return "phase";
    case range_level::layer:
        return "layer";
    }
    return "unknown";
}

void capture_batch::append(capture_batch&& other) {
    auto move_into = [](auto& to, auto& from) {
        to.insert(to.end(), std::make_move_iterator(from.begin()),
                  std::make_move_iterator(from.end()));
    };
    move_into(activities, other.activities);
    move_into(links, other.links);
    move_into(ranges, other.ranges);
    move_into(contexts, other.contexts);
    losses.dropped_records += other.losses.dropped_records;
    losses.buffers_refused += other.losses.buffers_refused;
    losses.unsupported_records += other.losses.unsupported_records;
    move_into(losses.warnings, other.losses.warnings);
}

} // namespace wlb::profiler
