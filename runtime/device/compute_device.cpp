#include "runtime/device/compute_device.hpp"

#include "base/error.hpp"

namespace wlb::runtime {

std::string_view dtype_name(dtype t) noexcept {
    switch (t) {
    case dtype::bf16:
        return "bf16";
    case dtype::f32:
        return "f32";
    case dtype::f64:
        return "f64";
    case dtype::i32:
        return "i32";
    case dtype::i64:
        return "i64";
    }
    return "unknown";
}

dspan dspan::sub(std::size_t offset, std::size_t n) const {
    WLB_EXPECTS(offset <= count && n <= count - offset,
                "device range [{}, {}) outside a {} range of {} elements", offset, offset + n,
                dtype_name(type), count);
    dspan s = *this;
    s.data = static_cast<char*>(data) + offset * element_bytes;
    s.count = n;
    return s;
}

} // namespace wlb::runtime
