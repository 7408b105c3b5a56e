// Synthetic document lengths for tests and what-if studies, from a seed. Deterministic across
// platforms: the random bits come from std::mt19937_64's raw output (fixed by the standard) and
// are turned into lengths by the small generators in this file (not std:: distributions, whose
// algorithms differ between standard libraries). The transforms use std::log, std::exp,
// std::pow, std::sqrt and std::cos; sqrt is exact in IEEE arithmetic and glibc's log/exp/cos are
// correctly rounded in practice, so a different libm could at most move a length that lands
// within one ulp of a rounding boundary.
//
// Specs (every parameter optional; unknown parameters are errors):
//   synthetic:lognormal?mu=8.0&sigma=1.0&n=100000&seed=1&max=131072
//       length = round(exp(mu + sigma * z)), z standard normal (Box-Muller).
//   synthetic:mixture?mu=7.8&sigma=1.0&weight=0.01&xmin=32768&alpha=1.0&n=100000&seed=1&max=131072
//       with probability `weight` a Pareto tail: length = xmin * u^(-1/alpha); otherwise the
//       lognormal bulk (mu, sigma).
//   synthetic:wlbllm?n=99519&seed=1
//       a preset shaped like WLB-LLM's long-context data (the reference distribution in
//       docs/data.md): inverse-CDF sampling of a piecewise-linear quantile function with knots
//       read off the reference file. See wlbllm_quantile_knots().
// Lengths are rounded to the nearest integer and are at least 1 and at most `max`, by truncating
// each component rather than piling lengths up at `max`: a lognormal draw above `max` is drawn
// again (up to 64 times, then set to `max`); the Pareto tail is sampled by inverting the CDF of
// the Pareto law truncated to [xmin, max]. So in a mixture the share of tail documents is
// exactly `weight` whatever `max` is.
#pragma once

#include "tuner/data/document_source.hpp"

#include <cstdint>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <string_view>

namespace wlb::tuner {

struct synthetic_params {
    enum class shape { lognormal, mixture, wlbllm };
    shape kind = shape::lognormal;
    double mu = 8.0;      ///< mean of log(length) of the (bulk) lognormal
    double sigma = 1.0;   ///< standard deviation of log(length)
    double weight = 0.01; ///< mixture: probability of a tail document
    double xmin = 32768;  ///< mixture: Pareto scale (smallest tail length)
    double alpha = 1.0;   ///< mixture: Pareto shape
    std::int64_t documents = 100000;
    std::uint64_t seed = 1;
    std::int64_t max_tokens = 131072;
};

/// Parses the part after "synthetic:" ("lognormal?mu=8&n=10"). Throws wlb::input_error naming
/// the parameter and listing the accepted ones.
synthetic_params parse_synthetic_spec(std::string_view text);

/// The canonical spec of `p` with every parameter spelled out.
std::string to_spec(const synthetic_params& p);

/// One knot of the wlbllm preset's quantile function: a fraction of documents and the length at
/// that quantile.
struct quantile_knot {
    double fraction;
    double tokens;
};
/// Knots at quantiles 0, 0.001, 0.01, ..., 0.999, 1 of the reference file (see the .cpp).
std::span<const quantile_knot> wlbllm_quantile_knots() noexcept;

/// A uniform double in [0, 1) from the top 53 bits of one raw 64-bit draw.
double uniform_unit(std::mt19937_64& engine) noexcept;
/// A standard normal value by Box-Muller (two raw draws, the cosine branch).
double standard_normal(std::mt19937_64& engine) noexcept;
/// An integer uniform in [0, bound) without modulo bias (Lemire's multiply-and-reject).
std::uint64_t uniform_below(std::mt19937_64& engine, std::uint64_t bound) noexcept;

class synthetic_source final : public document_source {
public:
    explicit synthetic_source(synthetic_params params);
    std::optional<std::int64_t> next() override;
    [[nodiscard]] std::optional<std::int64_t> size_hint() const override {
        return m_params.documents;
    }
    /// "synthetic:lognormal?mu=8&sigma=1&n=100000&seed=1&max=131072"
    [[nodiscard]] std::string describe() const override { return to_spec(m_params); }
    void rewind() override;
    [[nodiscard]] const synthetic_params& params() const noexcept { return m_params; }

private:
    [[nodiscard]] double draw();
    synthetic_params m_params;
    std::mt19937_64 m_engine;
    std::int64_t m_drawn = 0;
};

} // namespace wlb::tuner
