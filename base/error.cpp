#include "base/error.hpp"

namespace wlb {

std::string_view error::kind() const noexcept {
    switch (m_code) {
    case exit_code::ok:
        return "ok";
    case exit_code::usage:
        return "usage";
    case exit_code::bad_input:
        return "bad_input";
    case exit_code::runtime:
        return "runtime";
    case exit_code::internal:
        break;
    }
    return "internal";
}

namespace detail {

void api_failure(std::string_view api, long long code, std::string_view text, std::string_view call,
                 const char* file, int line) {
    throw runtime_failure(fmt::format("{} call `{}` failed at {}:{}: code {} ({})", api, call, file,
                                      line, code, text));
}

void expects_failure(std::string_view condition, const std::string& message, const char* file,
                     int line) {
    throw internal_error(
        fmt::format("precondition `{}` failed at {}:{}: {}", condition, file, line, message));
}

} // namespace detail
} // namespace wlb
