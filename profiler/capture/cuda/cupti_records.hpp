// CUPTI activity records -> capture records (profiler/capture/activity.hpp): the one reading of
// CUPTI's record layouts, shared by wlbtune's own capture (cupti_activity_source.cpp) and the
// injection library (profiler/capture/inject/cuda/). Reads memory only: no CUPTI call, so it
// serves a CUPTI that was loaded at run time too.
#pragma once

#include "profiler/capture/activity.hpp"

#include <cupti.h>

namespace wlb::profiler {

/// Appends one record to `out`: kernels (demangled), copies, sets, synchronization, and
/// external correlations of kind CUSTOM0 (as context links); other kinds are counted as
/// unsupported.
void parse_cupti_record(const CUpti_Activity* record, capture_batch& out);

} // namespace wlb::profiler
