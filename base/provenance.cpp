#include "base/provenance.hpp"

#include "base/error.hpp"
#include "base/input_file.hpp"
#include "wlb/build_info.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fmt/format.h>
#include <memory>
#include <nlohmann/json.hpp>
#include <xxhash.h>

namespace wlb {
namespace {
std::vector<std::string>& stored_command_line() {
    static std::vector<std::string> args;
    return args;
}
} // namespace

std::string hash_bytes(std::string_view bytes) {
    return fmt::format("{:016x}", XXH3_64bits(bytes.data(), bytes.size()));
}

input_identity identify_file(const std::string& path) {
    require_input_file(path);
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"),
                                                         &std::fclose);
    if (!file)
        throw input_error(path, fmt::format("cannot open: {}", std::strerror(errno)));
    std::unique_ptr<XXH3_state_t, XXH_errorcode (*)(XXH3_state_t*)> state(XXH3_createState(),
                                                                          &XXH3_freeState);
    XXH3_64bits_reset(state.get());
    std::vector<char> buffer(1 << 20);
    input_identity id;
    id.path = path;
    for (;;) {
        std::size_t n = std::fread(buffer.data(), 1, buffer.size(), file.get());
        if (n > 0) {
            XXH3_64bits_update(state.get(), buffer.data(), n);
            id.bytes += n;
        }
        if (n < buffer.size()) {
            if (std::ferror(file.get()))
                throw input_error(path, fmt::format("read failed at byte {}", id.bytes));
            break;
        }
    }
    id.hash = fmt::format("xxh3-64:{:016x}", XXH3_64bits_digest(state.get()));
    return id;
}

void set_command_line(int argc, const char* const* argv) {
    auto& args = stored_command_line();
    args.assign(argv, argv + argc);
}

const std::vector<std::string>& command_line() {
    return stored_command_line();
}

nlohmann::json report_header(std::string_view schema, const std::vector<input_identity>& inputs) {
    nlohmann::json j;
    j["schema"] = schema;
    j["tool"] = {{"name", "wlbtune"},
                 {"version", build_info::version},
                 {"cuda", build_info::with_cuda ? build_info::cuda_version : "off"},
                 {"mpi", build_info::with_mpi ? build_info::mpi_version : "off"}};
    j["command_line"] = command_line();
    auto& in = j["inputs"] = nlohmann::json::array();
    for (const auto& i : inputs)
        in.push_back({{"path", i.path}, {"bytes", i.bytes}, {"hash", i.hash}});
    return j;
}

} // namespace wlb
