#include "base/token_count.hpp"

#include "base/error.hpp"

#include <charconv>

namespace wlb {

std::int64_t parse_token_count(std::string_view text, std::string_view what) {
    std::string_view digits = text;
    std::int64_t scale = 1;
    if (!digits.empty()) {
        char last = digits.back();
        if (last == 'k' || last == 'K') {
            scale = 1024;
            digits.remove_suffix(1);
        } else if (last == 'm' || last == 'M') {
            scale = 1024 * 1024;
            digits.remove_suffix(1);
        }
    }
    std::int64_t value = 0;
    const char* end = digits.data() + digits.size();
    auto [ptr, ec] = std::from_chars(digits.data(), end, value);
    if (digits.empty() || ec != std::errc{} || ptr != end)
        throw input_error(fmt::format("{} \"{}\" is not a token count (expected an integer with "
                                      "an optional k or m suffix, e.g. 131072 or 128k)",
                                      what, text));
    if (value < 1)
        throw input_error(fmt::format("{} \"{}\" must be positive", what, text));
    if (value > (std::int64_t{1} << 40) / scale)
        throw input_error(fmt::format("{} \"{}\" is too large", what, text));
    return value * scale;
}

} // namespace wlb
