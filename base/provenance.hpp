// Provenance carried by every JSON output (design.md section 4, "Reports"): the schema name and
// version, the command line, the tool version and build, and the identity of every input file
// (path, size in bytes, content hash).
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace wlb {

struct input_identity {
    std::string path;
    std::uint64_t bytes = 0;
    std::string hash; ///< "xxh3-64:<16 hex digits>" of the file's content
};

/// Reads the file once to hash it. Throws wlb::input_error naming the path when it cannot be read.
input_identity identify_file(const std::string& path);

/// XXH3-64 of a byte range, as 16 lowercase hex digits.
std::string hash_bytes(std::string_view bytes);

/// Remembers the process's command line for every later report (cli/main.cpp calls it once).
void set_command_line(int argc, const char* const* argv);
const std::vector<std::string>& command_line();

/// {"schema": schema, "tool": {name, version, build}, "command_line": [...], "inputs": [...]}.
/// `schema` is "wlbtune.<name>/<version>".
nlohmann::json report_header(std::string_view schema, const std::vector<input_identity>& inputs);

} // namespace wlb
