// Runs the wlbtune executable in a child process and captures its exit code, stdout and stderr,
// for end-to-end tests of the command line.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

namespace wlb::test {

struct cli_result {
    int exit_code = -1;
    std::string out;
    std::string err;
};

inline std::string read_text(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

/// A fresh empty directory under the system temp dir, removed when the object dies.
class temp_dir {
public:
    temp_dir() {
        std::string tmpl = (std::filesystem::temp_directory_path() / "wlbtest.XXXXXX").string();
        char* made = ::mkdtemp(tmpl.data());
        m_path = made ? std::filesystem::path(made) : std::filesystem::path();
    }
    ~temp_dir() {
        std::error_code ec;
        if (!m_path.empty())
            std::filesystem::remove_all(m_path, ec);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    [[nodiscard]] const std::filesystem::path& path() const { return m_path; }
    [[nodiscard]] std::filesystem::path operator/(const std::string& name) const {
        return m_path / name;
    }

private:
    std::filesystem::path m_path;
};

/// `args` is appended to the executable's path as shell words (quote them yourself).
inline cli_result run_wlbtune(const std::string& args) {
    temp_dir dir;
    const auto out = dir / "stdout";
    const auto err = dir / "stderr";
    std::string cmd = std::string("'") + WLBTUNE_EXE + "' " + args + " >'" + out.string() +
                      "' 2>'" + err.string() + "' </dev/null";
    int status = std::system(cmd.c_str());
    cli_result r;
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.out = read_text(out);
    r.err = read_text(err);
    return r;
}

} // namespace wlb::test
