// One wlbtune.trace/1 event line (runtime/trace/trace.hpp), written by the injection library.
// The library is a self-contained shared object that carries only what it needs (no libfmt, no
// zlib), so it cannot link the runtime's trace writer; this writer produces the same bytes as
// runtime::to_json(e).dump(), which a unit test checks field by field and case by case.
#pragma once

#include "runtime/trace/trace.hpp"

#include <string>

namespace wlb::profiler {

[[nodiscard]] std::string trace_line(const runtime::trace_event& e);

} // namespace wlb::profiler
