#include "runtime/train/gpu_emulation.hpp"

#include <algorithm>

namespace wlb::runtime {

double emulation_result::max_compute_seconds() const noexcept {
    double m = 0.0;
    for (const auto& r : ranks)
        m = std::max(m, r.compute_seconds());
    return m;
}

double emulation_result::mean_compute_seconds() const noexcept {
    if (ranks.empty())
        return 0.0;
    double s = 0.0;
    for (const auto& r : ranks)
        s += r.compute_seconds();
    return s / static_cast<double>(ranks.size());
}

} // namespace wlb::runtime
