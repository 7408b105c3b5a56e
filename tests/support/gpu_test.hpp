// Helpers of the GPU test tier (tests/gpu): skip without a device, random bf16 data, and the
// norm-wise relative error the GPU kernels are held to against the CPU kernels.
#pragma once

#include "kernels/bf16.hpp"
#include "kernels/device_query.hpp"

#include <cmath>
#include <cstddef>
#include <random>
#include <string>
#include <vector>

namespace wlb::test {

/// The reason to skip, or "" when a CUDA device is usable (queried once per process).
inline const std::string& gpu_skip_reason() {
    static const std::string reason = [] {
        auto report = kernels::query_devices();
        return report.devices.empty() ? report.reason : std::string();
    }();
    return reason;
}

/// Values drawn from N(0, scale^2) and rounded to bf16: returned as floats (the CPU reference's
/// input) and as bf16 (the device's), equal value for value.
struct bf16_data {
    std::vector<float> values;
    std::vector<kernels::bf16> bits;
};

inline bf16_data random_bf16(std::size_t n, unsigned seed, float scale = 1.0f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.0f, scale);
    bf16_data d;
    d.values.resize(n);
    d.bits.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
        d.bits[i] = kernels::bf16(dist(rng));
        d.values[i] = static_cast<float>(d.bits[i]);
    }
    return d;
}

inline std::vector<float> to_float(const std::vector<kernels::bf16>& v) {
    std::vector<float> out(v.size());
    for (std::size_t i = 0; i < v.size(); ++i)
        out[i] = static_cast<float>(v[i]);
    return out;
}

/// ||got - want||_2 / ||want||_2 over the elements [i * stride + offset, + width) of `rows`
/// rows (a strided view), in double. 0 when both are zero; infinity when only want is.
inline double relative_error(const std::vector<float>& got, const std::vector<float>& want,
                             std::size_t rows, std::size_t width, std::size_t stride,
                             std::size_t offset = 0) {
    double diff = 0, norm = 0;
    for (std::size_t r = 0; r < rows; ++r)
        for (std::size_t c = 0; c < width; ++c) {
            const std::size_t i = r * stride + offset + c;
            const double d = static_cast<double>(got[i]) - static_cast<double>(want[i]);
            diff += d * d;
            norm += static_cast<double>(want[i]) * static_cast<double>(want[i]);
        }
    if (norm == 0)
        return diff == 0 ? 0.0 : INFINITY;
    return std::sqrt(diff / norm);
}

inline double relative_error(const std::vector<float>& got, const std::vector<float>& want) {
    return relative_error(got, want, 1, want.size(), want.size());
}

/// The acceptance bound of the CUDA kernels against the CPU kernels in bf16 (issue 9).
inline constexpr double bf16_tolerance = 1e-2;

} // namespace wlb::test

#define WLB_REQUIRE_GPU()                                                                          \
    do {                                                                                           \
        if (!::wlb::test::gpu_skip_reason().empty())                                               \
            GTEST_SKIP() << ::wlb::test::gpu_skip_reason();                                        \
    } while (0)
