// `wlbtune profile` and `wlbtune trigger` end to end, on CPU programs (no GPU, either build): the
// command's exit status is wlbtune's, signals sent to wlbtune reach the command, a command that
// used no CUDA leaves a manifest that says so, bad commands and unusable directories are clear
// errors, and the trigger protocol refuses what is not an armed capture directory of the user.
#include "runtime/trace/trace.hpp"
#include "support/cli_runner.hpp"

#include <chrono>
#include <csignal>
#include <filesystem>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace fs = std::filesystem;
using wlb::test::read_text;
using wlb::test::run_wlbtune;
using wlb::test::temp_dir;

namespace {

nlohmann::json manifest_of(const fs::path& dir) {
    return nlohmann::json::parse(read_text(dir / "manifest.json"));
}

TEST(CliProfile, TheCommandsExitCodeIsWlbtunesAndTheManifestSaysNoCudaWasUsed) {
    temp_dir tmp;
    const auto dir = tmp / "cap";
    const auto r = run_wlbtune("profile -o '" + dir.string() + "' -- /bin/sh -c 'exit 7'");
    EXPECT_EQ(r.exit_code, 7) << r.err;
    EXPECT_NE(r.err.find("exited with code 7"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("nothing was captured"), std::string::npos) << r.err;
    const auto m = manifest_of(dir);
    EXPECT_EQ(m["schema"], "wlbtune.trace/1");
    EXPECT_EQ(m["source"], "profile");
    EXPECT_EQ(m["capture"]["cuda_used"], false);
    EXPECT_EQ(m["capture"]["exit"]["code"], 7);
    EXPECT_TRUE(m["ranks"].empty());
    EXPECT_NE(m["capture"]["notes"].dump().find("no process of the command initialized CUDA"),
              std::string::npos);
    EXPECT_EQ(m["capture"]["command"], nlohmann::json::array({"/bin/sh", "-c", "exit 7"}));
    // A trace directory analyze can open.
    const wlb::runtime::trace_reader reader(dir.string());
    EXPECT_EQ(reader.meta().source, "profile");
    EXPECT_TRUE(reader.ranks().empty());
    // ... and analyze says there is nothing to analyze, with why (not an empty report, exit 0).
    const auto a = run_wlbtune("analyze '" + dir.string() + "'");
    EXPECT_EQ(a.exit_code, 3) << a.out;
    EXPECT_NE(a.err.find("no rank of the job has a trace"), std::string::npos) << a.err;
    EXPECT_NE(a.err.find("no process of the job used CUDA"), std::string::npos) << a.err;
    struct stat st {};
    ASSERT_EQ(::stat(dir.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u) << "the capture directory is private";

    EXPECT_EQ(run_wlbtune("profile -o '" + (tmp / "ok").string() + "' -- true").exit_code, 0);
}

/// Starts wlbtune with `args` (argv, no shell), waits until `ready` exists, sends `sig` to
/// wlbtune (not to the command) and returns wlbtune's exit status and how long it took.
std::pair<int, double> signal_wlbtune(const std::vector<std::string>& args, const fs::path& ready,
                                      int sig) {
    std::vector<char*> argv;
    std::string exe = WLBTUNE_EXE;
    argv.push_back(exe.data());
    std::vector<std::string> copy = args;
    for (auto& a : copy)
        argv.push_back(a.data());
    argv.push_back(nullptr);
    const auto started = std::chrono::steady_clock::now();
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::execv(argv[0], argv.data());
        ::_exit(126);
    }
    for (int i = 0; i < 200 && !fs::exists(ready); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_TRUE(fs::exists(ready)) << "the command never started";
    ::kill(pid, sig);
    int status = 0;
    ::waitpid(pid, &status, 0);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), seconds};
}

TEST(CliProfile, ASignalSentToWlbtuneReachesTheCommand) {
    temp_dir tmp;
    const auto ready = tmp / "ready";
    // The command handles SIGTERM itself: its own exit code comes back, so the signal reached it
    // and wlbtune did not die of it.
    auto [status, seconds] = signal_wlbtune(
        {"profile", "-o", (tmp / "a").string(), "--", "/bin/sh", "-c",
         "trap 'exit 42' TERM; touch '" + ready.string() + "'; while :; do sleep 0.1; done"},
        ready, SIGTERM);
    EXPECT_EQ(status, 42);
    EXPECT_LT(seconds, 20.0);
    EXPECT_EQ(manifest_of(tmp / "a")["capture"]["exit"]["code"], 42);

    // A command that does not handle it dies of it; wlbtune reports it and exits 128 + 15.
    fs::remove(ready);
    std::tie(status, seconds) =
        signal_wlbtune({"profile", "-o", (tmp / "b").string(), "--", "/bin/sh", "-c",
                        "touch '" + ready.string() + "'; exec sleep 30"},
                       ready, SIGTERM);
    EXPECT_EQ(status, 128 + SIGTERM);
    EXPECT_LT(seconds, 20.0) << "sleep 30 was ended by the forwarded signal";
    const auto m = manifest_of(tmp / "b");
    EXPECT_EQ(m["capture"]["exit"]["signal"], SIGTERM);
    EXPECT_TRUE(m["capture"]["exit"]["code"].is_null());
}

TEST(CliProfile, BadCommandsAndUnusableDirectoriesAreClearErrors) {
    temp_dir tmp;
    auto r = run_wlbtune("profile -o '" + (tmp / "x").string() + "' -- /no/such/program arg");
    EXPECT_EQ(r.exit_code, 3) << r.err;
    EXPECT_NE(r.err.find("cannot run \"/no/such/program\""), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(tmp / "x")) << "a command that never ran leaves no capture";

    r = run_wlbtune("profile -o '" + (tmp / "y").string() + "' -- no-such-program-wlb");
    EXPECT_EQ(r.exit_code, 3) << r.err;
    EXPECT_NE(r.err.find("not found on PATH"), std::string::npos) << r.err;

    r = run_wlbtune("profile -o '" + (tmp / "z").string() + "'");
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find("no command to profile"), std::string::npos) << r.err;

    r = run_wlbtune("profile -o /proc/wlbtune-cannot-be-here/cap -- true");
    EXPECT_EQ(r.exit_code, 4) << r.err;
    EXPECT_NE(r.err.find("cannot use /proc/wlbtune-cannot-be-here/cap as the capture directory"),
              std::string::npos)
        << r.err;

    const auto shared = tmp / "shared";
    fs::create_directory(shared);
    ::chmod(shared.c_str(), 0755);
    r = run_wlbtune("profile -o '" + shared.string() + "' -- true");
    EXPECT_EQ(r.exit_code, 4) << r.err;
    EXPECT_NE(r.err.find("open to other users"), std::string::npos) << r.err;

    r = run_wlbtune("profile -o '" + (tmp / "w").string() + "' --step-range '(' -- true");
    EXPECT_EQ(r.exit_code, 3) << r.err;
    EXPECT_NE(r.err.find("--step-range \"(\" is not a regular expression"), std::string::npos);

    r = run_wlbtune("profile --armed --capture-range profiler-api -- true");
    EXPECT_EQ(r.exit_code, 2) << r.err;
}

TEST(CliTrigger, OnlyAnArmedCaptureDirectoryOfTheUserIsTriggered) {
    temp_dir tmp;
    auto r = run_wlbtune("trigger '" + tmp.path().string() + "'");
    EXPECT_EQ(r.exit_code, 3) << r.err; // mkdtemp makes it 0700, but no armed session

    const auto full = tmp / "full";
    ASSERT_EQ(run_wlbtune("profile -o '" + full.string() + "' -- true").exit_code, 0);
    r = run_wlbtune("trigger '" + full.string() + "'");
    EXPECT_EQ(r.exit_code, 3) << r.err;
    EXPECT_NE(r.err.find("--armed"), std::string::npos) << r.err;

    const auto armed = tmp / "armed";
    ASSERT_EQ(run_wlbtune("profile --armed -o '" + armed.string() + "' -- true").exit_code, 0);
    r = run_wlbtune("trigger '" + armed.string() + "' --steps 3");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("request 1"), std::string::npos) << r.out;
    auto control = nlohmann::json::parse(read_text(armed / "control.json"));
    EXPECT_EQ(control["id"], 1);
    EXPECT_EQ(control["steps"], 3);
    r = run_wlbtune("trigger '" + armed.string() + "' --seconds 1.5");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    control = nlohmann::json::parse(read_text(armed / "control.json"));
    EXPECT_EQ(control["id"], 2) << "a second trigger is a second window";
    EXPECT_EQ(control["steps"], 0);
    EXPECT_EQ(control["seconds"], 1.5);

    ::chmod(armed.c_str(), 0755);
    r = run_wlbtune("trigger '" + armed.string() + "'");
    EXPECT_EQ(r.exit_code, 3) << r.err;
    EXPECT_NE(r.err.find("open to other users"), std::string::npos) << r.err;
    ::chmod(armed.c_str(), 0700);

    // --finalize gathers the directory again.
    r = run_wlbtune("profile --finalize -o '" + armed.string() + "'");
    EXPECT_EQ(r.exit_code, 3) << "no process report: nothing to gather; " << r.err;
}

} // namespace
