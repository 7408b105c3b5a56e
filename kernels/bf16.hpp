// bfloat16 as the host sees it: 16 bits of storage (the top half of an IEEE float) and the
// conversions to and from float. The CUDA kernels read the same bits as __nv_bfloat16, so host
// code passes `bf16*` device pointers without including a CUDA header (design.md section 3).
// C++17: the .cu files include it.
#pragma once

#include <cstdint>
#include <cstring>

namespace wlb::kernels {

struct bf16 {
    std::uint16_t bits = 0;

    bf16() = default;
    /// Round to nearest even, as __float2bfloat16_rn; NaN stays NaN.
    explicit bf16(float value) noexcept {
        std::uint32_t u = 0;
        std::memcpy(&u, &value, sizeof u);
        if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu) != 0) {
            bits = static_cast<std::uint16_t>((u >> 16) | 0x0040u); // quiet NaN
            return;
        }
        const std::uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);
        bits = static_cast<std::uint16_t>((u + rounding) >> 16);
    }
    [[nodiscard]] static bf16 from_bits(std::uint16_t b) noexcept {
        bf16 x;
        x.bits = b;
        return x;
    }
    explicit operator float() const noexcept {
        const std::uint32_t u = static_cast<std::uint32_t>(bits) << 16;
        float f = 0;
        std::memcpy(&f, &u, sizeof f);
        return f;
    }
};

static_assert(sizeof(bf16) == 2, "bf16 must be 16 bits (the device reads it as __nv_bfloat16)");

/// The float nearest to `x` that bf16 represents (x rounded through bf16).
inline float round_to_bf16(float x) noexcept {
    return static_cast<float>(bf16(x));
}

} // namespace wlb::kernels
