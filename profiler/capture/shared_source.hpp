// One capture backend shared by several ranks of one process (issue [cuda-run]: an emulated run
// holds every rank of a layout in one process, and CUPTI allows one activity session per
// process). Each rank gets a view that is an activity_source of its own (so each rank keeps its
// own capture_session: its range stack, contexts and report):
//
// - contexts: a view pushes its session's context ids into the shared backend tagged with its
//   rank (id + (rank + 1) << 40), so the links of every rank stay apart, and hands them back
//   untagged;
// - records: an activity belongs to the rank whose context its API call was issued in (the
//   link); an activity without a link belongs to the rank that registered its stream, else to
//   the first view;
// - start and stop: the backend starts with the first view's start and stops with the first
//   view's stop (after the run, every rank finishes); the first drain after that takes everything
//   from it and each view takes its share; the backend's losses go to the first view.
//
// Pure host code over the activity_source seam: unit-tested with the fake source.
#pragma once

#include "profiler/capture/activity_source.hpp"

#include <memory>

namespace wlb::profiler {

class shared_activity_source {
public:
    explicit shared_activity_source(std::unique_ptr<activity_source> backend);
    ~shared_activity_source();
    shared_activity_source(const shared_activity_source&) = delete;
    shared_activity_source& operator=(const shared_activity_source&) = delete;

    /// Rank `rank`'s view (rank >= 0, one view per rank); the shared source must outlive it.
    [[nodiscard]] std::unique_ptr<activity_source> view(int rank);

    struct state;

private:
    std::shared_ptr<state> m_state;
};

} // namespace wlb::profiler
