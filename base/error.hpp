// The one error path of wlbtune (style.md, "Errors").
//
// - A small exception hierarchy; every class maps to one documented exit code, and
//   cli/main.cpp is the one place that catches, prints and maps to that code.
// - WLB_EXPECTS(cond, fmt, ...) checks a precondition and throws wlb::internal_error: a broken
//   precondition is a bug in the caller. Bad user input is checked explicitly and thrown as
//   wlb::input_error with the file and place.
// - WLB_CUDA_CHECK, WLB_NCCL_CHECK, WLB_CUPTI_CHECK, WLB_MPI_CHECK wrap API calls; each
//   captures file, line and the call's text and hands off to one out-of-line function
//   (detail::api_failure) that formats the message and throws wlb::runtime_failure. The macros
//   name their API's error-string function, so they compile only where that API's header is
//   included (the edges), while this header includes no CUDA, NCCL, CUPTI or MPI header.
#pragma once

#include <cstdint>
#include <fmt/format.h>
#include <stdexcept>
#include <string>
#include <string_view>

namespace wlb {

/// Process exit codes, documented in docs/cli.md.
enum class exit_code : int {
    ok = 0,
    internal = 1,  ///< a bug: a broken invariant or an unexpected exception
    usage = 2,     ///< the command line's shape: unknown option, missing argument
    bad_input = 3, ///< a value or a file's content is invalid (layout, dataset, trace, config)
    runtime = 4,   ///< a failure while running: CUDA, NCCL, CUPTI, MPI, I/O
};

/// Base of every wlbtune exception.
class error : public std::runtime_error {
public:
    error(exit_code code, const std::string& message) : std::runtime_error(message), m_code(code) {}
    [[nodiscard]] exit_code code() const noexcept { return m_code; }
    /// Short machine-readable kind: "usage", "bad_input", "runtime", "internal".
    [[nodiscard]] std::string_view kind() const noexcept;

private:
    exit_code m_code;
};

/// The command line is malformed.
class usage_error : public error {
public:
    explicit usage_error(const std::string& message) : error(exit_code::usage, message) {}
};

/// A value or a file is invalid. When it comes from a file, `where` names the file and the
/// place (line, offset, JSON path) so the message reads "FILE:PLACE: what".
class input_error : public error {
public:
    explicit input_error(const std::string& message) : error(exit_code::bad_input, message) {}
    input_error(std::string_view where, std::string_view message)
        : error(exit_code::bad_input, fmt::format("{}: {}", where, message)) {}
};

/// Something failed while running (an API call, I/O, a peer).
class runtime_failure : public error {
public:
    explicit runtime_failure(const std::string& message) : error(exit_code::runtime, message) {}
};

/// A bug in wlbtune: a broken precondition or invariant.
class internal_error : public error {
public:
    explicit internal_error(const std::string& message) : error(exit_code::internal, message) {}
};

namespace detail {
/// Formats "API call `CALL` failed at FILE:LINE: code N (TEXT)" and throws runtime_failure.
[[noreturn]] void api_failure(std::string_view api, long long code, std::string_view text,
                              std::string_view call, const char* file, int line);
/// Throws internal_error for a failed WLB_EXPECTS.
[[noreturn]] void expects_failure(std::string_view condition, const std::string& message,
                                  const char* file, int line);
} // namespace detail

} // namespace wlb

#define WLB_EXPECTS(cond, ...)                                                                     \
    do {                                                                                           \
        if (!(cond)) [[unlikely]]                                                                  \
            ::wlb::detail::expects_failure(#cond, ::fmt::format(__VA_ARGS__), __FILE__, __LINE__); \
    } while (0)

#define WLB_CUDA_CHECK(call)                                                                       \
    do {                                                                                           \
        const auto wlb_status_ = (call);                                                           \
        if (wlb_status_ != cudaSuccess) [[unlikely]]                                               \
            ::wlb::detail::api_failure("CUDA", static_cast<long long>(wlb_status_),                \
                                       cudaGetErrorString(wlb_status_), #call, __FILE__,           \
                                       __LINE__);                                                  \
    } while (0)

#define WLB_NCCL_CHECK(call)                                                                       \
    do {                                                                                           \
        const auto wlb_status_ = (call);                                                           \
        if (wlb_status_ != ncclSuccess) [[unlikely]]                                               \
            ::wlb::detail::api_failure("NCCL", static_cast<long long>(wlb_status_),                \
                                       ncclGetErrorString(wlb_status_), #call, __FILE__,           \
                                       __LINE__);                                                  \
    } while (0)

#define WLB_CUPTI_CHECK(call)                                                                      \
    do {                                                                                           \
        const auto wlb_status_ = (call);                                                           \
        if (wlb_status_ != CUPTI_SUCCESS) [[unlikely]] {                                           \
            const char* wlb_text_ = nullptr;                                                       \
            cuptiGetResultString(wlb_status_, &wlb_text_);                                         \
            ::wlb::detail::api_failure("CUPTI", static_cast<long long>(wlb_status_),               \
                                       wlb_text_ ? wlb_text_ : "unknown", #call, __FILE__,         \
                                       __LINE__);                                                  \
        }                                                                                          \
    } while (0)

#define WLB_MPI_CHECK(call)                                                                        \
    do {                                                                                           \
        const int wlb_status_ = (call);                                                            \
        if (wlb_status_ != MPI_SUCCESS) [[unlikely]] {                                             \
            char wlb_text_[MPI_MAX_ERROR_STRING] = {};                                             \
            int wlb_len_ = 0;                                                                      \
            MPI_Error_string(wlb_status_, wlb_text_, &wlb_len_);                                   \
            ::wlb::detail::api_failure("MPI", wlb_status_, wlb_text_, #call, __FILE__, __LINE__);  \
        }                                                                                          \
    } while (0)
