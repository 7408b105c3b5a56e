#include "runtime/device/attention_choice.hpp"

#include "base/error.hpp"

namespace wlb::runtime {

attention_choice parse_attention_choice(std::string_view text) {
    if (text == "auto")
        return attention_choice::automatic;
    if (text == "cudnn")
        return attention_choice::cudnn;
    if (text == "mma")
        return attention_choice::mma;
    if (text == "simt")
        return attention_choice::simt;
    throw input_error(
        fmt::format("unknown attention \"{}\" (expected auto, cudnn, mma or simt)", text));
}

std::string_view to_string(attention_choice c) noexcept {
    switch (c) {
    case attention_choice::automatic:
        return "auto";
    case attention_choice::cudnn:
        return "cudnn";
    case attention_choice::mma:
        return "mma";
    case attention_choice::simt:
        return "simt";
    }
    return "auto";
}

} // namespace wlb::runtime
