// Regression tests for what the fuzz targets (tests/fuzz, docs/fuzzing.md) found: each input, or
// the smallest one showing the same fault, with the property the fix restores.
#include "base/error.hpp"
#include "support/cli_runner.hpp"
#include "tuner/plan/plan_io.hpp"

#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <string>

namespace {

using wlb::test::temp_dir;

// Open descriptors of this process (each /proc/self/fd entry, the directory's own included).
int open_descriptors() {
    int n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd"))
        ++n;
    return n;
}

// fuzz_plan_config: a plan whose header line is refused leaked the gzFile opened for it (the
// constructor threw, so the destructor that closes it never ran): its descriptor and zlib's
// buffers, once for every bad plan read.
TEST(FuzzFindings, RefusedPlanHeaderClosesTheFile) {
    temp_dir dir;
    const auto path = (dir / "bad.jsonl").string();
    std::ofstream(path) << R"({"schema": "wlbtune.plan/1", "layout": 7})"
                        << "\n";
    const int before = open_descriptors();
    for (int i = 0; i < 20; ++i)
        EXPECT_THROW(wlb::tuner::plan_reader reader(path), wlb::input_error);
    EXPECT_EQ(open_descriptors(), before);
}

} // namespace
