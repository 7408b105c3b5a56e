// What every fuzz target shares: a private temporary directory for the parsers that take a
// path, the input split into a selector byte and the rest, and the one rule on exceptions.
//
// The rule: a wlb::error whose exit code is usage (2), bad_input (3) or runtime (4) is the
// library rejecting bad input as documented, and is caught here. Anything else is a finding and
// escapes to libFuzzer: a wlb::internal_error (exit 1, "a bug in wlbtune"), a foreign exception
// (std::out_of_range from a container, nlohmann::json's, std::bad_alloc), a crash or a
// sanitizer report.
#pragma once

#include "base/error.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <unistd.h>

namespace wlb::fuzz {

/// A directory of its own under $TMPDIR (or /tmp), made once per process and removed at exit.
inline const std::filesystem::path& scratch_dir() {
    static const std::filesystem::path dir = [] {
        const char* base = std::getenv("TMPDIR");
        std::string pattern = std::string(base && *base ? base : "/tmp") + "/wlb_fuzz_XXXXXX";
        if (!::mkdtemp(pattern.data())) {
            std::perror("mkdtemp");
            std::abort();
        }
        std::filesystem::path p(pattern);
        static struct remover {
            std::filesystem::path path;
            ~remover() {
                std::error_code ec;
                std::filesystem::remove_all(path, ec);
            }
        } at_exit{p};
        return p;
    }();
    return dir;
}

/// Writes `bytes` to `name` inside scratch_dir() (replacing what an earlier input left) and
/// returns the path.
inline std::string write_scratch(std::string_view name, std::string_view bytes) {
    const std::filesystem::path path = scratch_dir() / name;
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out) {
        std::perror("writing a fuzz input");
        std::abort();
    }
    return path.string();
}

/// The input as a selector (its first byte, 0 when empty) and the bytes after it.
struct selected_input {
    std::uint8_t selector = 0;
    std::string_view rest;
};
inline selected_input select(const std::uint8_t* data, std::size_t size) {
    if (size == 0)
        return {};
    return {data[0], std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1)};
}

/// Runs `body`; swallows only the errors that stand for rejected input (see the file comment).
template <typename Body>
void expect_input_errors(Body&& body) {
    try {
        body();
    } catch (const wlb::error& e) {
        if (e.code() == wlb::exit_code::internal)
            throw;
    }
}

} // namespace wlb::fuzz
