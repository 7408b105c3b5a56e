#include "profiler/ingest/chrome_json.hpp"

#include "profiler/ingest/ingest.hpp"

#include <cmath>
#include <limits>
#include <memory>

namespace wlb::profiler::chrome {

namespace {
thread_local std::unique_ptr<parse_buffers> t_buffers;
} // namespace

parse_buffers& buffers() {
    if (!t_buffers)
        t_buffers = std::make_unique<parse_buffers>();
    return *t_buffers;
}

void release_buffers() {
    t_buffers.reset();
}

bool micros_to_ns(std::string_view tok, std::int64_t& ns) {
    tok = trim(tok);
    if (!tok.empty() && tok.front() == '"') {
        tok.remove_prefix(1);
        if (!tok.empty() && tok.back() == '"')
            tok.remove_suffix(1);
    }
    if (tok.empty())
        return false;
    if (tok.find_first_of("eE") != std::string_view::npos) {
        double v = 0.0;
        auto [p, ec] = std::from_chars(tok.data(), tok.data() + tok.size(), v);
        // Beyond int64 nanoseconds (292 years) is not a time: refused, not rounded.
        if (ec != std::errc{} || !std::isfinite(v) || std::fabs(v) >= 9.2e15)
            return false;
        ns = std::llround(v * 1000.0);
        return true;
    }
    bool neg = false;
    if (tok.front() == '-') {
        neg = true;
        tok.remove_prefix(1);
    }
    const auto dot = tok.find('.');
    const std::string_view whole = tok.substr(0, dot);
    std::int64_t us = 0;
    if (!whole.empty()) {
        auto [p, ec] = std::from_chars(whole.data(), whole.data() + whole.size(), us);
        if (ec != std::errc{} || p != whole.data() + whole.size())
            return false;
        // us * 1000 + 999 must fit: a larger count overflowed (undefined behaviour, found by
        // tests/fuzz/fuzz_traces under UBSan).
        if (us > (std::numeric_limits<std::int64_t>::max() - 999) / 1000)
            return false;
    }
    std::int64_t frac = 0;
    if (dot != std::string_view::npos) {
        int digits = 0;
        for (char c : tok.substr(dot + 1)) {
            if (c < '0' || c > '9')
                return false;
            if (digits < 3) {
                frac = frac * 10 + (c - '0');
            } else if (digits == 3 && c >= '5') {
                ++frac; // rounds on the fourth digit
            }
            ++digits;
        }
        for (; digits < 3; ++digits)
            frac *= 10;
    }
    if (us > (std::numeric_limits<std::int64_t>::max() - 999) / 1000)
        return false; // nanoseconds past int64
    ns = us * 1000 + frac;
    if (neg)
        ns = -ns;
    return true;
}

} // namespace wlb::profiler::chrome

namespace wlb::profiler {
void release_parse_buffers() {
    chrome::release_buffers();
}
} // namespace wlb::profiler
