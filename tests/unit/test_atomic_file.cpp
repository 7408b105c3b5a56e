// Output files ([hardening]): never half-written, never destroying what sits at the path.
// Each case failed before base/atomic_file.cpp learnt it: a device or FIFO was replaced by a
// regular file, a symbolic link by a file, a long legal name was refused, an error named the
// temporary file, a failed write left a temporary file behind.
#include "base/atomic_file.hpp"
#include "base/error.hpp"
#include "support/cli_runner.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <thread>

using wlb::test::read_text;
using wlb::test::temp_dir;
namespace fs = std::filesystem;

namespace {

std::vector<std::string> names_in(const fs::path& dir) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir))
        out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
}

TEST(AtomicFile, ANewFileAppearsWholeAndNothingElseIsLeft) {
    temp_dir dir;
    const auto p = (dir / "out.json").string();
    wlb::write_file_atomic(p, "hello\n");
    EXPECT_EQ(read_text(p), "hello\n");
    EXPECT_EQ(names_in(dir.path()), std::vector<std::string>{"out.json"});
}

TEST(AtomicFile, AnUncommittedWriterLeavesTheTargetAndNoTemporaryFile) {
    temp_dir dir;
    const auto p = (dir / "plan.jsonl").string();
    wlb::write_file_atomic(p, "old\n");
    {
        wlb::atomic_writer w(p);
        w.write("new, but never committed");
    }
    EXPECT_EQ(read_text(p), "old\n");
    EXPECT_EQ(names_in(dir.path()), std::vector<std::string>{"plan.jsonl"});
}

TEST(AtomicFile, ACharacterDeviceIsWrittenInPlaceNotReplaced) {
    // /dev/null must stay the device (as root, a rename over it replaced the system's).
    struct stat before {};
    ASSERT_EQ(::stat("/dev/null", &before), 0);
    ASSERT_TRUE(S_ISCHR(before.st_mode));
    wlb::write_file_atomic("/dev/null", "discarded\n");
    {
        wlb::atomic_writer gz("/dev/null", true);
        gz.write("compressed and discarded");
        gz.commit();
    }
    struct stat after {};
    ASSERT_EQ(::stat("/dev/null", &after), 0);
    EXPECT_TRUE(S_ISCHR(after.st_mode));
    EXPECT_EQ(after.st_rdev, before.st_rdev);
}

TEST(AtomicFile, AFullDeviceIsAnErrorNamingThePath) {
    if (!fs::exists("/dev/full"))
        GTEST_SKIP() << "no /dev/full here";
    try {
        wlb::write_file_atomic("/dev/full", std::string(1 << 16, 'x'));
        FAIL() << "writing to /dev/full succeeded";
    } catch (const wlb::runtime_failure& e) {
        EXPECT_NE(std::string(e.what()).find("/dev/full"), std::string::npos) << e.what();
        EXPECT_EQ(std::string(e.what()).find(".tmp"), std::string::npos) << e.what();
    }
    struct stat st {};
    ASSERT_EQ(::stat("/dev/full", &st), 0);
    EXPECT_TRUE(S_ISCHR(st.st_mode));
}

TEST(AtomicFile, AFifoIsWrittenThroughNotReplaced) {
    temp_dir dir;
    const auto fifo = (dir / "pipe").string();
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    std::string got;
    std::thread reader([&] { got = read_text(fifo); });
    wlb::write_file_atomic(fifo, "through the pipe\n");
    reader.join();
    EXPECT_EQ(got, "through the pipe\n");
    struct stat st {};
    ASSERT_EQ(::stat(fifo.c_str(), &st), 0);
    EXPECT_TRUE(S_ISFIFO(st.st_mode));
}

TEST(AtomicFile, ASymbolicLinkIsFollowedAndItsTargetReplaced) {
    temp_dir dir;
    fs::create_directory(dir / "real");
    const auto target = dir / "real" / "report.json";
    std::ofstream(target) << "old";
    const auto link = dir / "report.json";
    fs::create_symlink("real/report.json", link);
    wlb::write_file_atomic(link.string(), "new");
    EXPECT_TRUE(fs::is_symlink(link));
    EXPECT_EQ(read_text(target), "new");
    EXPECT_EQ(names_in(dir / "real"), std::vector<std::string>{"report.json"});
}

TEST(AtomicFile, ADanglingLinkCreatesItsTarget) {
    temp_dir dir;
    const auto link = dir / "out.json";
    fs::create_symlink("made.json", link);
    wlb::write_file_atomic(link.string(), "x");
    EXPECT_TRUE(fs::is_symlink(link));
    EXPECT_EQ(read_text(dir / "made.json"), "x");
}

TEST(AtomicFile, TheLongestLegalNameIsWritten) {
    temp_dir dir;
    const std::string name(251, 'n'); // legal (<= 255), but name + ".tmp.PID" was not
    const auto p = (dir / name).string();
    wlb::write_file_atomic(p, "long");
    EXPECT_EQ(read_text(p), "long");
    EXPECT_EQ(names_in(dir.path()), std::vector<std::string>{name});
}

TEST(AtomicFile, ADirectoryIsRefusedNamingThePath) {
    temp_dir dir;
    try {
        wlb::write_file_atomic(dir.path().string(), "x");
        FAIL() << "wrote over a directory";
    } catch (const wlb::input_error& e) {
        EXPECT_NE(std::string(e.what()).find("is a directory"), std::string::npos) << e.what();
    }
    EXPECT_THROW(wlb::check_output_path(dir.path().string(), "-o"), wlb::input_error);
}

TEST(AtomicFile, ReplacingKeepsThePermissions) {
    temp_dir dir;
    const auto p = (dir / "x.json").string();
    std::ofstream(p) << "old";
    ASSERT_EQ(::chmod(p.c_str(), 0640), 0);
    wlb::write_file_atomic(p, "new");
    struct stat st {};
    ASSERT_EQ(::stat(p.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0640u);
}

TEST(AtomicFile, OutputPathsAreCheckedBeforeTheWork) {
    temp_dir dir;
    EXPECT_NO_THROW(wlb::check_output_path((dir / "new.json").string(), "-o"));
    EXPECT_NO_THROW(wlb::check_output_path("-", "-o"));
    EXPECT_NO_THROW(wlb::check_output_path("/dev/null", "-o"));
    try {
        wlb::check_output_path((dir / "missing" / "x.json").string(), "-o");
        FAIL() << "a missing directory was accepted";
    } catch (const wlb::input_error& e) {
        EXPECT_NE(std::string(e.what()).find("-o"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("does not exist"), std::string::npos) << e.what();
    }
}

} // namespace
