#include "runtime/train/backend.hpp"

#include "base/error.hpp"

namespace wlb::runtime {

backend_kind parse_backend(std::string_view text) {
    if (text == "cpu")
        return backend_kind::cpu;
    if (text == "cuda")
        return backend_kind::cuda;
    throw input_error(fmt::format("unknown backend \"{}\" (expected cpu or cuda)", text));
}

std::string_view to_string(backend_kind k) noexcept {
    return k == backend_kind::cpu ? "cpu" : "cuda";
}

precision parse_precision(std::string_view text) {
    if (text == "float" || text == "fp32")
        return precision::f32;
    if (text == "double" || text == "fp64")
        return precision::f64;
    throw input_error(fmt::format("unknown precision \"{}\" (expected float or double)", text));
}

std::string_view to_string(precision p) noexcept {
    return p == precision::f32 ? "float" : "double";
}

} // namespace wlb::runtime
