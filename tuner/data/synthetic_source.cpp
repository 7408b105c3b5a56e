#include "tuner/data/synthetic_source.hpp"

#include "base/error.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <fmt/format.h>
#include <numbers>

namespace wlb::tuner {
namespace {

// The wlbllm preset: quantiles of the reference file (99,519 lengths, hao-ai-lab/distca
// distca/simulator/data/dist_wlbllm.json), taken as the element at index round(q * (n-1)) of
// the sorted list, by scripts/fit_wlbllm_preset.py. The bulk below the 97th percentile is close
// to uniform on [1, 6.4K] (the log2 histogram doubles per bucket); the tail from 6.2K to 125K
// has more knots because it carries the attention work. Between knots the quantile function is
// linear. The fitted law has mean 3,977 (reference 3,962), median 3,227, p99 26,070 and max
// 124,913 by construction, and about 17.1% of tokens in documents over 32K (reference 17.0%).
constexpr std::array<quantile_knot, 21> wlbllm_knots = {{
    {0.0, 1},        {0.001, 7},     {0.01, 63},      {0.03, 193},    {0.1, 646},
    {0.25, 1606},    {0.5, 3227},    {0.75, 4832},    {0.9, 5784},    {0.95, 6110},
    {0.97, 6236},    {0.975, 7482},  {0.98, 10080},   {0.985, 13208}, {0.99, 26070},
    {0.9925, 42183}, {0.995, 69084}, {0.9965, 86967}, {0.998, 99310}, {0.999, 119754},
    {1.0, 124913},
}};

[[noreturn]] void bad_spec(std::string_view text, std::string_view what) {
    throw input_error(fmt::format("synthetic:{}", text), what);
}

double parse_double(std::string_view text, std::string_view key, std::string_view value) {
    double v = 0;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
    if (ec != std::errc() || end != value.data() + value.size() || !std::isfinite(v))
        bad_spec(text, fmt::format("parameter {}={} is not a number", key, value));
    return v;
}

template <typename T>
T parse_integer(std::string_view text, std::string_view key, std::string_view value) {
    T v = 0;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
    if (ec != std::errc() || end != value.data() + value.size())
        bad_spec(text, fmt::format("parameter {}={} is not a non-negative integer", key, value));
    return v;
}

std::string_view shape_name(synthetic_params::shape s) {
    switch (s) {
    case synthetic_params::shape::lognormal:
        return "lognormal";
    case synthetic_params::shape::mixture:
        return "mixture";
    case synthetic_params::shape::wlbllm:
        return "wlbllm";
    }
    return "?";
}

} // namespace

std::span<const quantile_knot> wlbllm_quantile_knots() noexcept {
    return wlbllm_knots;
}

double uniform_unit(std::mt19937_64& engine) noexcept {
    return static_cast<double>(engine() >> 11) * 0x1.0p-53;
}

double standard_normal(std::mt19937_64& engine) noexcept {
    // u1 in (0, 1] so that log(u1) is finite
    const double u1 = static_cast<double>((engine() >> 11) + 1) * 0x1.0p-53;
    const double u2 = uniform_unit(engine);
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

std::uint64_t uniform_below(std::mt19937_64& engine, std::uint64_t bound) noexcept {
    // Lemire, "Fast Random Integer Generation in an Interval" (2019).
    unsigned __int128 m = static_cast<unsigned __int128>(engine()) * bound;
    auto low = static_cast<std::uint64_t>(m);
    if (low < bound) {
        const std::uint64_t threshold = (0 - bound) % bound;
        while (low < threshold) {
            m = static_cast<unsigned __int128>(engine()) * bound;
            low = static_cast<std::uint64_t>(m);
        }
    }
    return static_cast<std::uint64_t>(m >> 64);
}

synthetic_params parse_synthetic_spec(std::string_view text) {
    synthetic_params p;
    const auto q = text.find('?');
    const std::string_view kind = text.substr(0, q);
    std::string_view accepted;
    if (kind == "lognormal") {
        p.kind = synthetic_params::shape::lognormal;
        accepted = "mu, sigma, n, seed, max";
    } else if (kind == "mixture") {
        p.kind = synthetic_params::shape::mixture;
        p.mu = 7.8;
        accepted = "mu, sigma, weight, xmin, alpha, n, seed, max";
    } else if (kind == "wlbllm") {
        p.kind = synthetic_params::shape::wlbllm;
        p.documents = 99519;
        p.max_tokens = 131072;
        accepted = "n, seed";
    } else {
        bad_spec(text, fmt::format("unknown synthetic distribution \"{}\": expected lognormal, "
                                   "mixture or wlbllm",
                                   kind));
    }
    std::string_view rest = q == std::string_view::npos ? std::string_view{} : text.substr(q + 1);
    while (!rest.empty()) {
        const auto amp = rest.find('&');
        const std::string_view pair = rest.substr(0, amp);
        rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
        if (pair.empty())
            continue;
        const auto eq = pair.find('=');
        if (eq == std::string_view::npos)
            bad_spec(text, fmt::format("parameter \"{}\" has no value (expected key=value)", pair));
        const std::string_view key = pair.substr(0, eq);
        const std::string_view value = pair.substr(eq + 1);
        const bool shaped = p.kind != synthetic_params::shape::wlbllm;
        const bool mixture = p.kind == synthetic_params::shape::mixture;
        if (key == "n")
            p.documents = parse_integer<std::int64_t>(text, key, value);
        else if (key == "seed")
            p.seed = parse_integer<std::uint64_t>(text, key, value);
        else if (shaped && key == "mu")
            p.mu = parse_double(text, key, value);
        else if (shaped && key == "sigma")
            p.sigma = parse_double(text, key, value);
        else if (shaped && key == "max")
            p.max_tokens = parse_integer<std::int64_t>(text, key, value);
        else if (mixture && key == "weight")
            p.weight = parse_double(text, key, value);
        else if (mixture && key == "xmin")
            p.xmin = parse_double(text, key, value);
        else if (mixture && key == "alpha")
            p.alpha = parse_double(text, key, value);
        else
            bad_spec(text, fmt::format("unknown parameter \"{}\" for {}: accepted {}", key, kind,
                                       accepted));
    }
    if (p.documents < 0)
        bad_spec(text, "n must be >= 0");
    if (p.sigma < 0)
        bad_spec(text, fmt::format("sigma={} must be >= 0", p.sigma));
    if (p.max_tokens < 1 || p.max_tokens > max_document_tokens)
        bad_spec(text, fmt::format("max={} must be in [1, {}]", p.max_tokens, max_document_tokens));
    if (p.weight < 0 || p.weight > 1)
        bad_spec(text, fmt::format("weight={} must be in [0, 1]", p.weight));
    if (p.xmin < 1)
        bad_spec(text, fmt::format("xmin={} must be >= 1", p.xmin));
    if (p.alpha <= 0)
        bad_spec(text, fmt::format("alpha={} must be > 0", p.alpha));
    return p;
}

std::string to_spec(const synthetic_params& p) {
    switch (p.kind) {
    case synthetic_params::shape::lognormal:
        return fmt::format("synthetic:lognormal?mu={}&sigma={}&n={}&seed={}&max={}", p.mu, p.sigma,
                           p.documents, p.seed, p.max_tokens);
    case synthetic_params::shape::mixture:
        return fmt::format("synthetic:mixture?mu={}&sigma={}&weight={}&xmin={}&alpha={}&n={}&"
                           "seed={}&max={}",
                           p.mu, p.sigma, p.weight, p.xmin, p.alpha, p.documents, p.seed,
                           p.max_tokens);
    case synthetic_params::shape::wlbllm:
        return fmt::format("synthetic:wlbllm?n={}&seed={}", p.documents, p.seed);
    }
    return std::string("synthetic:") + std::string(shape_name(p.kind));
}

synthetic_source::synthetic_source(synthetic_params params)
    : m_params(params), m_engine(params.seed) {}

double synthetic_source::draw() {
    const auto max = static_cast<double>(m_params.max_tokens);
    const auto lognormal = [&] {
        // redrawn while above max (the lognormal truncated at max)
        double x = max;
        for (int tries = 0; tries < 64; ++tries) {
            x = std::exp(m_params.mu + m_params.sigma * standard_normal(m_engine));
            if (x < max + 0.5)
                return x;
        }
        return max;
    };
    switch (m_params.kind) {
    case synthetic_params::shape::lognormal:
        return lognormal();
    case synthetic_params::shape::mixture:
        if (uniform_unit(m_engine) < m_params.weight) {
            // Pareto(xmin, alpha) truncated to [xmin, max], by inversion of its CDF
            if (m_params.xmin >= max)
                return max;
            const double u = uniform_unit(m_engine);
            const double tail_mass = 1.0 - std::pow(m_params.xmin / max, m_params.alpha);
            return m_params.xmin * std::pow(1.0 - u * tail_mass, -1.0 / m_params.alpha);
        }
        return lognormal();
    case synthetic_params::shape::wlbllm: {
        const double u = uniform_unit(m_engine);
        const auto& k = wlbllm_knots;
        std::size_t i = 1;
        while (i + 1 < k.size() && u >= k[i].fraction)
            ++i;
        const double t = (u - k[i - 1].fraction) / (k[i].fraction - k[i - 1].fraction);
        return std::min(max, k[i - 1].tokens + t * (k[i].tokens - k[i - 1].tokens));
    }
    }
    return 1;
}

std::optional<std::int64_t> synthetic_source::next() {
    if (m_drawn >= m_params.documents)
        return std::nullopt;
    ++m_drawn;
    const double x = draw();
    const std::int64_t tokens = std::isfinite(x) ? std::llround(x) : m_params.max_tokens;
    return std::clamp<std::int64_t>(tokens, 1, m_params.max_tokens);
}

void synthetic_source::rewind() {
    m_engine.seed(m_params.seed);
    m_drawn = 0;
}

} // namespace wlb::tuner
