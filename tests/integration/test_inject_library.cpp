// libwlbtune_inject.so without a GPU: it exports its two entry points and nothing else and needs
// no library a job may lack (not libstdc++'s version, not libfmt, not CUPTI: that is loaded at run
// time); loaded into a process through NVTX_INJECTION64_PATH and called as the CUDA driver calls
// it, it records the process's NVTX ranges, names its files by the launcher's rank, survives a
// CUPTI that cannot trace (no driver here) with a warning instead of an abort, and writes nothing
// into a directory that others may open.
#include "profiler/capture/inject/control_file.hpp"
#include "support/cli_runner.hpp"

#include <csignal>
#include <filesystem>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace fs = std::filesystem;
using wlb::test::read_text;
using wlb::test::temp_dir;

namespace {

#ifdef WLB_INJECT_LIBRARY

struct run_result {
    int status = -1;
    std::string out, err;
};

run_result run_shell(const std::string& command) {
    temp_dir tmp;
    const auto out = tmp / "out";
    const auto err = tmp / "err";
    const int s =
        std::system((command + " >'" + out.string() + "' 2>'" + err.string() + "'").c_str());
    return {WIFEXITED(s) ? WEXITSTATUS(s) : 128 + WTERMSIG(s), read_text(out), read_text(err)};
}

std::set<std::string> words(const std::string& text) {
    std::set<std::string> out;
    std::istringstream in(text);
    for (std::string w; in >> w;)
        out.insert(w);
    return out;
}

TEST(InjectLibrary, ExportsItsEntryPointsOnlyAndNeedsNoLibraryAJobMayLack) {
    const std::string lib = WLB_INJECT_LIBRARY;
    const auto symbols = run_shell("nm -D --defined-only '" + lib + "' | awk '{ print $3 }'");
    if (symbols.status == 127)
        GTEST_SKIP() << "nm not found";
    ASSERT_EQ(symbols.status, 0) << symbols.err;
    EXPECT_EQ(words(symbols.out),
              (std::set<std::string>{"InitializeInjection", "InitializeInjectionNvtx2"}));
    const auto needed = run_shell("objdump -p '" + lib + "' | awk '/NEEDED/ { print $2 }'");
    ASSERT_EQ(needed.status, 0) << needed.err;
    for (const auto& n : words(needed.out))
        EXPECT_TRUE(n.starts_with("libc.so") || n.starts_with("libm.so") ||
                    n.starts_with("ld-linux") || n.starts_with("libdl.so") ||
                    n.starts_with("libpthread.so"))
            << lib << " needs " << n;
}

std::string host_command(const fs::path& dir, const std::string& extra = {},
                         const std::string& sleep_ms = {}) {
    return "env RANK=3 WORLD_SIZE=4 LOCAL_RANK=1 WLBTUNE_CAPTURE_DIR='" + dir.string() +
           "' WLBTUNE_SESSION=test NVTX_INJECTION64_PATH='" + WLB_INJECT_LIBRARY + "' " + extra +
           " '" + WLB_INJECT_HOST_EXE + "' '" + WLB_INJECT_LIBRARY + "' " + sleep_ms;
}

fs::path private_dir(const temp_dir& tmp) {
    const auto dir = tmp / "cap";
    fs::create_directory(dir);
    fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace);
    return dir;
}

nlohmann::json the_report(const fs::path& dir) {
    for (const auto& e : fs::directory_iterator(dir))
        if (e.path().filename().string().ends_with(".capture.json"))
            return nlohmann::json::parse(read_text(e.path()));
    return nullptr;
}

TEST(InjectLibrary, LoadedIntoAProcessItRecordsNvtxAndNeverAbortsIt) {
    temp_dir tmp;
    const auto dir = tmp / "cap";
    fs::create_directory(dir);
    fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace);
    const auto r = run_shell(host_command(dir));
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("InitializeInjection returned 1"), std::string::npos) << r.out;

    std::string report_file;
    for (const auto& e : fs::directory_iterator(dir))
        if (e.path().filename().string().ends_with(".capture.json"))
            report_file = e.path().string();
    ASSERT_FALSE(report_file.empty()) << "no process report; stderr: " << r.err;
    EXPECT_TRUE(fs::path(report_file).filename().string().starts_with("rank_00003.pid"));
    const auto report = nlohmann::json::parse(read_text(report_file));
    EXPECT_EQ(report["rank"], 3);
    EXPECT_EQ(report["world_size"], 4);
    EXPECT_EQ(report["local_rank"], 1);
    EXPECT_EQ(report["launcher"], "torchrun");
    EXPECT_EQ(report["session"], "test");
    // Before cuInit, four ranges (train_step, forward, an op, a "backward" in a domain of its own
    // named by a registered string): all seen through NVTX injection, the three that mean
    // something to the analysis kept, every pop matched.
    const auto& nvtx = report["nvtx"];
    EXPECT_GE(nvtx["ranges"].get<int>(), 4) << nvtx.dump();
    EXPECT_GE(nvtx["kept"].get<int>(), 3) << "train_step, forward and the registered backward";
    EXPECT_EQ(nvtx["unmatched_pops"], 0) << nvtx.dump();
    EXPECT_TRUE(fs::exists(dir / report["file"].get<std::string>()));
    // No driver here: CUPTI cannot trace. The job went on (exit 0 above) and was told why; the
    // range after cuInit is recorded only while capture is on.
    if (report["capture"]["warnings"].empty()) {
        EXPECT_EQ(nvtx["ranges"], 5) << "capture stayed on: the last train_step is in";
        GTEST_SKIP() << "this machine's CUPTI traced without a driver; nothing more to check";
    }
    EXPECT_EQ(nvtx["ranges"], 4) << "capture is off after cuInit: nothing more recorded";
    EXPECT_NE(report["capture"]["warnings"].dump().find("capture off"), std::string::npos);
    EXPECT_NE(r.err.find("wlbtune: warning: rank 3"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("the job continues"), std::string::npos) << r.err;
}

TEST(InjectLibrary, AnArmedProcessSeesATriggerOffItsOwnThread) {
    // Armed, the process opens a window when a trigger request appears; here CUPTI cannot trace
    // (no driver), so opening it fails, is warned about and recorded, and the process goes on.
    temp_dir tmp;
    const auto dir = private_dir(tmp);
    std::string problem;
    ASSERT_TRUE(wlb::profiler::write_trigger(dir.string(), ::geteuid(), 2, 0.0, problem))
        << problem;
    const auto r =
        run_shell(host_command(dir, "WLBTUNE_CAPTURE_MODE=armed WLBTUNE_POLL_MS=20", "600"));
    ASSERT_EQ(r.status, 0) << r.err;
    const auto report = the_report(dir);
    ASSERT_TRUE(report.is_object()) << r.err;
    EXPECT_EQ(report["mode"], "armed");
    if (report["capture"]["warnings"].empty())
        GTEST_SKIP() << "this machine's CUPTI traced without a driver";
    EXPECT_NE(report["capture"]["warnings"].dump().find("CUPTI"), std::string::npos)
        << "the trigger was seen and a window tried: " << report["capture"]["warnings"].dump();
}

TEST(InjectLibrary, ASigtermEndsTheProcessAsBeforeAfterTheFilesAreWritten) {
    // The library's handler writes, then lets the signal end the process as it would have.
    temp_dir tmp;
    const auto dir = private_dir(tmp);
    const auto r = run_shell("(" + host_command(dir, "WLBTUNE_CAPTURE_MODE=armed", "20000") +
                             " & pid=$!; sleep 1; kill -TERM $pid; wait $pid; exit $?)");
    EXPECT_EQ(r.status, 128 + SIGTERM) << r.err;
    const auto report = the_report(dir);
    ASSERT_TRUE(report.is_object()) << "written before the signal ended it; " << r.err;
    EXPECT_EQ(report["rank"], 3);
}

TEST(InjectLibrary, ADirectoryOthersMayOpenGetsNothing) {
    temp_dir tmp;
    const auto dir = tmp / "open";
    fs::create_directory(dir);
    ::chmod(dir.c_str(), 0755);
    const auto r = run_shell(host_command(dir));
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.err.find("capture off"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("open to other users"), std::string::npos) << r.err;
    EXPECT_TRUE(fs::is_empty(dir));
}

TEST(InjectLibrary, WithoutWlbtuneProfileItStaysOff) {
    const auto r = run_shell(std::string("env NVTX_INJECTION64_PATH='") + WLB_INJECT_LIBRARY +
                             "' '" + WLB_INJECT_HOST_EXE + "' '" + WLB_INJECT_LIBRARY + "'");
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.err.find("without WLBTUNE_CAPTURE_DIR"), std::string::npos) << r.err;
}

#else

TEST(InjectLibrary, NotBuilt) {
    GTEST_SKIP() << "this build has no CUDA, so no libwlbtune_inject.so";
}

#endif

} // namespace
