// Validates an exported Perfetto / Chrome trace file against the rules of reports/perfetto.hpp:
// parseable JSON (gzip or plain), a traceEvents array, every complete event with numeric
// non-negative ts and dur on a named thread of a process named "rank N tpA cpB ppC dpD", no
// two overlapping slices on one thread, args with micro_batch, stage and phase on every slice,
// and every flow start matched by one finish, not earlier, each inside a slice of its thread.
// Used by the tests on every exported file (and usable on any file a user wants to check).
#pragma once

#include <string>
#include <vector>

namespace wlb::reports {

struct perfetto_check_result {
    std::vector<std::string> problems; ///< empty: the file keeps every rule
    std::size_t slices = 0;
    std::size_t flows = 0;
    std::size_t processes = 0;
    [[nodiscard]] bool ok() const noexcept { return problems.empty(); }
};

/// Never throws for a bad file: every breach becomes a problem (the first 50 are kept).
perfetto_check_result check_perfetto_file(const std::string& path);

} // namespace wlb::reports
