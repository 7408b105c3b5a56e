// Token counts as users write them: "131072", "128k" (= 131072), "1m" (= 1048576), "64K".
#pragma once

#include <cstdint>
#include <string_view>

namespace wlb {

/// Parses a positive token count with an optional k (x1024) or m (x1048576) suffix. Throws
/// wlb::input_error naming `what` (e.g. "--context") and the text on anything else.
std::int64_t parse_token_count(std::string_view text, std::string_view what);

} // namespace wlb
