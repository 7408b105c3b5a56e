#include "tuner/cost/rate_fit.hpp"

#include "base/error.hpp"
#include "runtime/parallel/layout.hpp"
#include "tuner/cost/cost_model.hpp"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <functional>
#include <limits>
#include <numeric>

namespace wlb::tuner {
namespace {

using runtime::rate_class;
using runtime::rate_sample;
using runtime::rate_samples;

cost_model model_for(const rate_samples& set, const hardware_config& h) {
    cost_options o;
    o.bytes_per_element = set.bytes_per_element;
    return cost_model(set.model, h, runtime::layout(set.tp, 1, 1, 1), o);
}

double gemm_flops(const rate_samples& set, const rate_sample& s) {
    const cost_options o;
    return 2.0 * set.model.layer_params() / set.tp * static_cast<double>(s.tokens) *
           (s.backward ? o.gemm_bwd_flop_ratio : 1.0);
}

double elementwise_bytes(const rate_samples& set, const rate_sample& s) {
    const cost_options o;
    return static_cast<double>(s.tokens) * o.elementwise_hidden_passes * set.model.hidden *
           set.bytes_per_element / set.tp * (s.backward ? 2.0 : 1.0);
}

double output_flops(const rate_samples& set, const rate_sample& s) {
    const cost_options o;
    return 2.0 * static_cast<double>(s.tokens) * set.model.hidden * set.model.vocab / set.tp *
           (s.backward ? o.gemm_bwd_flop_ratio : 1.0);
}

std::vector<const rate_sample*> select(const rate_samples& set, rate_class c,
                                       std::optional<bool> backward = std::nullopt) {
    std::vector<const rate_sample*> out;
    for (const auto& s : set.samples)
        if (s.what == c && s.seconds > 0.0 && (!backward || s.backward == *backward))
            out.push_back(&s);
    return out;
}

double median_of(std::vector<double> v) {
    if (v.empty())
        return 0.0;
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double median_spread(const std::vector<const rate_sample*>& ss) {
    std::vector<double> v;
    for (const auto* s : ss)
        v.push_back(s->spread);
    return median_of(v);
}

double rms(const std::vector<double>& errors) {
    if (errors.empty())
        return 0.0;
    double s = 0;
    for (double e : errors)
        s += e * e;
    return std::sqrt(s / static_cast<double>(errors.size()));
}

/// Solves A x = b (n x n, row-major) by Gaussian elimination with partial pivoting; a singular
/// direction gets 0.
std::vector<double> solve(std::vector<double> a, std::vector<double> b) {
    const std::size_t n = b.size();
    for (std::size_t c = 0; c < n; ++c) {
        std::size_t p = c;
        for (std::size_t r = c + 1; r < n; ++r)
            if (std::abs(a[r * n + c]) > std::abs(a[p * n + c]))
                p = r;
        if (p != c) {
            for (std::size_t k = 0; k < n; ++k)
                std::swap(a[c * n + k], a[p * n + k]);
            std::swap(b[c], b[p]);
        }
        if (std::abs(a[c * n + c]) < 1e-300)
            continue;
        for (std::size_t r = 0; r < n; ++r) {
            if (r == c)
                continue;
            const double f = a[r * n + c] / a[c * n + c];
            if (f == 0.0)
                continue;
            for (std::size_t k = c; k < n; ++k)
                a[r * n + k] -= f * a[c * n + k];
            b[r] -= f * b[c];
        }
    }
    std::vector<double> x(n, 0.0);
    for (std::size_t c = 0; c < n; ++c)
        if (std::abs(a[c * n + c]) >= 1e-300)
            x[c] = b[c] / a[c * n + c];
    return x;
}

/// Least squares on relative errors: minimizes sum_i (x_i . beta / y_i - 1)^2.
std::vector<double> relative_least_squares(const std::vector<std::vector<double>>& x,
                                           const std::vector<double>& y) {
    const std::size_t m = x.front().size();
    std::vector<double> ata(m * m, 0.0), atb(m, 0.0);
    for (std::size_t i = 0; i < x.size(); ++i)
        for (std::size_t a = 0; a < m; ++a) {
            const double xa = x[i][a] / y[i];
            atb[a] += xa;
            for (std::size_t b = 0; b < m; ++b)
                ata[a * m + b] += xa * x[i][b] / y[i];
        }
    return solve(ata, atb);
}

/// Levenberg-Marquardt on residuals r(theta) (relative errors).
std::vector<double> levenberg_marquardt(
    std::vector<double> theta,
    const std::function<std::vector<double>(const std::vector<double>&)>& residuals) {
    auto cost = [](const std::vector<double>& r) {
        double s = 0;
        for (double e : r)
            s += e * e;
        return s;
    };
    auto r = residuals(theta);
    double c = cost(r);
    double lambda = 1e-3;
    const std::size_t m = theta.size();
    for (int iter = 0; iter < 200 && lambda < 1e12; ++iter) {
        // Jacobian by forward differences.
        std::vector<std::vector<double>> jac(m);
        for (std::size_t k = 0; k < m; ++k) {
            auto t = theta;
            const double h = 1e-6 * std::max(1.0, std::abs(theta[k]));
            t[k] += h;
            const auto rk = residuals(t);
            jac[k].resize(r.size());
            for (std::size_t i = 0; i < r.size(); ++i)
                jac[k][i] = (rk[i] - r[i]) / h;
        }
        std::vector<double> jtj(m * m, 0.0), jtr(m, 0.0);
        for (std::size_t a = 0; a < m; ++a) {
            for (std::size_t i = 0; i < r.size(); ++i)
                jtr[a] -= jac[a][i] * r[i];
            for (std::size_t b = 0; b < m; ++b)
                for (std::size_t i = 0; i < r.size(); ++i)
                    jtj[a * m + b] += jac[a][i] * jac[b][i];
        }
        bool improved = false;
        while (lambda < 1e12) {
            auto damped = jtj;
            for (std::size_t a = 0; a < m; ++a)
                damped[a * m + a] += lambda * (jtj[a * m + a] + 1e-12);
            const auto step = solve(damped, jtr);
            auto t = theta;
            for (std::size_t a = 0; a < m; ++a)
                t[a] += step[a];
            const auto rt = residuals(t);
            const double ct = cost(rt);
            if (std::isfinite(ct) && ct < c) {
                const double gain = (c - ct) / std::max(c, 1e-300);
                theta = t;
                r = rt;
                c = ct;
                lambda = std::max(lambda / 3.0, 1e-12);
                improved = true;
                if (gain < 1e-12)
                    return theta;
                break;
            }
            lambda *= 4.0;
        }
        if (!improved)
            break;
    }
    return theta;
}

/// The attention fit of one pass for one set of knots; `token_term` false fixes it at 0.
struct attention_pass_fit {
    std::vector<rate_point> table;
    double token_pairs = 0.0;
    double rms = 0.0;
};

hardware_config with_attention(const hardware_config& base, bool backward,
                               const std::vector<rate_point>& table, double token_pairs) {
    auto h = base;
    if (backward) {
        h.attention_bwd = table;
        h.attention_bwd_token_pairs = token_pairs;
    } else {
        h.attention_fwd = table;
        h.attention_fwd_token_pairs = token_pairs;
        // Keep the backward on its own terms while the forward moves.
        if (h.attention_bwd.empty())
            h.attention_bwd = {{1, base.attention_fwd_tflops(1e9) * base.attention_bwd_rate_ratio}};
    }
    return h;
}

double predict_attention(const cost_model& costs, const rate_sample& s) {
    runtime::cp_shard shard{s.chunks};
    return s.backward ? costs.attention_bwd_seconds(shard) : costs.attention_fwd_seconds(shard);
}

attention_pass_fit fit_attention_pass(const rate_samples& set,
                                      const std::vector<const rate_sample*>& ss,
                                      const hardware_config& base, bool backward,
                                      const std::vector<int>& knots, bool token_term,
                                      const attention_pass_fit* start = nullptr) {
    // Start: one rate and a per-token term, linear in (1/rate, term/rate).
    const int tile = base.attention_tile;
    const double width = 4.0 * set.model.hidden / set.tp * (backward ? 2.5 : 1.0);
    std::vector<std::vector<double>> x;
    std::vector<double> y;
    for (const auto* s : ss) {
        double pairs = 0, tokens = 0;
        for (const auto& c : s->chunks) {
            const double n = static_cast<double>((c.q_tokens + tile - 1) / tile * tile);
            pairs += n * static_cast<double>(c.q_offset) + n * (n + 1.0) / 2.0;
            tokens += n;
        }
        x.push_back({width * pairs, width * tokens});
        y.push_back(s->seconds);
    }
    auto beta = relative_least_squares(x, y);
    if (!token_term || beta[1] < 0.0) {
        std::vector<std::vector<double>> x1;
        for (const auto& row : x)
            x1.push_back({row[0]});
        beta = {relative_least_squares(x1, y)[0], 0.0};
    }
    const double rate0 = beta[0] > 0.0 ? 1.0 / beta[0] / 1e12 : 1e-3;
    const double pairs0 = beta[0] > 0.0 ? std::max(0.0, beta[1] / beta[0]) : 0.0;

    const std::size_t m = knots.size();
    std::vector<double> theta(m, std::log(rate0));
    if (token_term)
        theta.push_back(std::sqrt(pairs0));
    if (start != nullptr) { // another form's answer, as a point of this one
        for (std::size_t k = 0; k < m; ++k)
            theta[k] = std::log(interpolate_rate(start->table, knots[k]));
        if (token_term)
            theta[m] = std::sqrt(std::max(start->token_pairs, 1e-3));
    }
    auto decode = [&](const std::vector<double>& t) {
        std::vector<rate_point> table;
        for (std::size_t k = 0; k < m; ++k)
            table.push_back({knots[k], std::exp(t[k])});
        return std::pair{table, token_term ? t[m] * t[m] : 0.0};
    };
    auto residuals = [&](const std::vector<double>& t) {
        const auto [table, tp] = decode(t);
        const auto costs = model_for(set, with_attention(base, backward, table, tp));
        std::vector<double> r;
        r.reserve(ss.size());
        for (const auto* s : ss)
            r.push_back(predict_attention(costs, *s) / s->seconds - 1.0);
        return r;
    };
    theta = levenberg_marquardt(theta, residuals);
    attention_pass_fit out;
    std::tie(out.table, out.token_pairs) = decode(theta);
    out.rms = rms(residuals(theta));
    return out;
}

/// Knots for the attention table: the shortest and longest padded chunk lengths the samples hold
/// and the powers of 4 between them (no two knots closer than 2x).
std::vector<int> attention_knots(const std::vector<const rate_sample*>& ss, int tile) {
    std::int64_t lo = std::numeric_limits<std::int64_t>::max(), hi = 0;
    for (const auto* s : ss)
        for (const auto& c : s->chunks) {
            const std::int64_t n = (c.q_tokens + tile - 1) / tile * tile;
            lo = std::min(lo, n);
            hi = std::max(hi, n);
        }
    if (hi == 0)
        return {};
    std::vector<int> k = {static_cast<int>(lo)};
    for (std::int64_t p = 1; p < hi; p *= 4)
        if (p >= 2 * k.back() && 2 * p <= hi)
            k.push_back(static_cast<int>(p));
    if (hi >= 2 * k.back())
        k.push_back(static_cast<int>(hi));
    return k;
}

/// A knot the samples do not pin keeps the nearest pinned knot's rate. A knot is pinned when, in
/// some sample, the chunks between its neighbours hold at least 5% of the sample's causal pairs:
/// below that its rate barely moves any prediction, and the fit may leave it anywhere (a run's
/// trace with a few short chunks beside long ones put it at 1e9 TFLOP/s).
void flatten_unreached(std::vector<rate_point>& table, const std::vector<const rate_sample*>& ss,
                       int tile) {
    constexpr double pinned_share = 0.05;
    const std::size_t m = table.size();
    std::vector<char> reached(m, 0);
    std::vector<double> share(m);
    for (const auto* s : ss) {
        std::fill(share.begin(), share.end(), 0.0);
        double total = 0.0;
        for (const auto& c : s->chunks) {
            const double n = static_cast<double>((c.q_tokens + tile - 1) / tile * tile);
            const double pairs = n * static_cast<double>(c.q_offset) + n * (n + 1.0) / 2.0;
            total += pairs;
            for (std::size_t k = 0; k < m; ++k) {
                const double lo = k == 0 ? 0.0 : table[k - 1].query_tokens;
                const double hi = k + 1 == m ? 1e300 : table[k + 1].query_tokens;
                if (n > lo && n < hi)
                    share[k] += pairs;
            }
        }
        for (std::size_t k = 0; k < m; ++k)
            if (total > 0.0 && share[k] >= pinned_share * total)
                reached[k] = 1;
    }
    for (std::size_t k = 0; k < m; ++k) {
        if (reached[k])
            continue;
        for (std::size_t d = 1; d < m; ++d) {
            if (k >= d && reached[k - d]) {
                table[k].tflops = table[k - d].tflops;
                break;
            }
            if (k + d < m && reached[k + d]) {
                table[k].tflops = table[k + d].tflops;
                break;
            }
        }
    }
}

/// The table with a first point at the tile (or 1), flat to the first knot, so that shorter
/// chunks than the samples held are not charged the proportional-below-the-first rule.
std::vector<rate_point> with_floor(std::vector<rate_point> table, int tile) {
    const int floor = std::max(1, std::min(tile, table.front().query_tokens));
    if (table.front().query_tokens > floor)
        table.insert(table.begin(), {floor, table.front().tflops});
    return table;
}

class_fit summarize(std::string what, const std::vector<const rate_sample*>& ss,
                    const std::function<double(const rate_sample&)>& predict,
                    std::vector<sample_residual>& residuals) {
    class_fit f;
    f.what = std::move(what);
    f.samples = static_cast<int>(ss.size());
    std::vector<double> e;
    for (const auto* s : ss) {
        const double p = predict(*s);
        const double err = p / s->seconds - 1.0;
        e.push_back(err);
        if (std::abs(err) > std::abs(f.worst_error)) {
            f.worst_error = err;
            f.worst_label = s->label;
        }
        residuals.push_back({f.what, s->label, s->seconds, p});
    }
    f.rms_error = rms(e);
    f.median_spread = median_spread(ss);
    return f;
}

std::string share(const class_fit& f) {
    return fmt::format("{} samples, rms error {:.1f}%", f.samples, 100.0 * f.rms_error);
}

} // namespace

double predict_sample(const rate_sample& s, const rate_samples& set, const hardware_config& h) {
    const auto costs = model_for(set, h);
    switch (s.what) {
    case rate_class::gemm:
        return gemm_flops(set, s) / (h.gemm_tflops * (s.backward ? h.gemm_bwd_rate() : 1.0) * 1e12);
    case rate_class::elementwise:
        return elementwise_bytes(set, s) / (h.hbm_gbytes_per_s * 1e9);
    case rate_class::linear:
        return s.backward ? costs.linear_bwd_seconds(s.tokens) : costs.linear_fwd_seconds(s.tokens);
    case rate_class::attention:
        return predict_attention(costs, s);
    case rate_class::output_layer:
        return s.backward ? costs.output_layer_bwd_seconds(s.tokens)
                          : costs.output_layer_fwd_seconds(s.tokens);
    case rate_class::collective: {
        if (s.op == runtime::collective_op::p2p)
            return costs.p2p_seconds(s.bytes, s.intra_node);
        const auto kind = s.op == runtime::collective_op::all_reduce   ? collective::all_reduce
                          : s.op == runtime::collective_op::all_gather ? collective::all_gather
                                                                       : collective::reduce_scatter;
        return costs.collective_seconds(kind, s.bytes, s.group_size, s.intra_node);
    }
    }
    return 0.0;
}

hardware_fit fit_hardware(const rate_samples& set, const hardware_config& base,
                          const fit_options& options) {
    hardware_fit out;
    auto& h = out.hardware;
    h = base;
    h.name = options.name;
    if (options.attention_tile)
        h.attention_tile = *options.attention_tile;
    const std::string from = set.source;
    auto note_base = [&](const std::string& what) {
        out.notes.push_back(
            fmt::format("{}: not measured by {}; left at {}'s", what, from, base.name));
    };

    // GEMMs, element-wise work, the output layer: ratios of sums.
    const auto gemm = select(set, rate_class::gemm);
    const auto elementwise = select(set, rate_class::elementwise);
    const auto linear = select(set, rate_class::linear);
    const auto output = select(set, rate_class::output_layer);
    auto ratio = [](const std::vector<const rate_sample*>& ss, auto&& work) {
        double w = 0, s = 0;
        for (const auto* x : ss) {
            w += work(*x);
            s += x->seconds;
        }
        return w / s;
    };
    // A rate for each pass (the backward's GEMMs have other shapes and transposes: on the CPU
    // backend they ran about 12% faster per FLOP than the forward's, and the output layer's
    // forward holds the loss's softmax); the forward's rate is the field, the backward's goes in
    // as a ratio to it. A pass with no samples keeps the base's ratio (`bwd_ratio` holds it).
    auto pass_rates = [&](const std::vector<const rate_sample*>& ss, auto&& work, double& rate,
                          double& bwd_ratio) {
        std::vector<const rate_sample*> f, b;
        for (const auto* s : ss)
            (s->backward ? b : f).push_back(s);
        const double kept = bwd_ratio > 0.0 ? bwd_ratio : 1.0;
        if (b.empty())
            rate = ratio(f, work);
        else if (f.empty())
            rate = ratio(b, work) / kept;
        else {
            rate = ratio(f, work);
            bwd_ratio = ratio(b, work) / rate;
        }
    };
    if (!gemm.empty()) {
        pass_rates(
            gemm, [&](const auto& s) { return gemm_flops(set, s); }, h.gemm_tflops,
            h.gemm_bwd_rate_ratio);
        h.gemm_tflops /= 1e12;
        h.spread["gemm_tflops"] = median_spread(gemm);
        if (base.peak_bf16_tflops == base.gemm_tflops) // a CPU: no separate peak
            h.peak_bf16_tflops = h.gemm_tflops;
    }
    if (!elementwise.empty()) {
        h.hbm_gbytes_per_s =
            ratio(elementwise, [&](const auto& s) { return elementwise_bytes(set, s); }) / 1e9;
        h.spread["hbm_gbytes_per_s"] = median_spread(elementwise);
    }
    if (gemm.empty() && elementwise.empty() && !linear.empty()) {
        // Linear work as a whole: keep the base's split of GEMMs and element-wise work.
        double measured = 0, predicted = 0;
        for (const auto* s : linear) {
            measured += s->seconds;
            predicted += predict_sample(*s, set, base);
        }
        const double scale = predicted / measured;
        h.gemm_tflops = base.gemm_tflops * scale;
        h.hbm_gbytes_per_s = base.hbm_gbytes_per_s * scale;
        if (base.peak_bf16_tflops == base.gemm_tflops)
            h.peak_bf16_tflops = h.gemm_tflops;
        h.spread["gemm_tflops"] = h.spread["hbm_gbytes_per_s"] = median_spread(linear);
        out.notes.push_back(fmt::format("linear work only as a whole in {}: {}'s split of GEMMs "
                                        "and element-wise work kept, both scaled by {:.3f}",
                                        from, base.name, scale));
    } else if (gemm.empty() || elementwise.empty()) {
        note_base(gemm.empty() ? "gemm_tflops" : "hbm_gbytes_per_s");
    }
    if (!output.empty()) {
        pass_rates(
            output, [&](const auto& s) { return output_flops(set, s); }, h.output_layer_tflops,
            h.output_layer_bwd_rate_ratio);
        h.output_layer_tflops /= 1e12;
        h.spread["output_layer_tflops"] = median_spread(output);
    }

    // Attention: forward and backward, three forms compared.
    const auto fwd = select(set, rate_class::attention, false);
    const auto bwd = select(set, rate_class::attention, true);
    if (fwd.empty() || bwd.empty()) {
        note_base("attention (forward and backward)");
    } else {
        const int tile = h.attention_tile;
        auto tiled = h; // the base's attention, the fitted tile
        const auto knots_f = attention_knots(fwd, tile);
        const auto knots_b = attention_knots(bwd, tile);
        struct form {
            std::string name;
            bool table;
            bool token;
        };
        const std::vector<form> forms = {
            {"rate table by chunk length alone (the presets' form)", true, false},
            {"one rate + per-token term", false, true},
            {"rate table by chunk length + per-token term", true, true},
        };
        std::vector<std::pair<attention_pass_fit, attention_pass_fit>> fits;
        for (const auto& f : forms) {
            const std::vector<int> one = {1};
            auto pass = [&](const std::vector<const rate_sample*>& ss, bool backward,
                            const std::vector<int>& knots) {
                auto best =
                    fit_attention_pass(set, ss, tiled, backward, f.table ? knots : one, f.token);
                // The full form holds the other two: started from their answers too, it can
                // only fit as well or better (least squares is not convex in these terms).
                for (const auto& earlier : fits) {
                    if (!(f.table && f.token))
                        break;
                    const auto& start = backward ? earlier.second : earlier.first;
                    auto x = fit_attention_pass(set, ss, tiled, backward, knots, true, &start);
                    if (x.rms < best.rms)
                        best = std::move(x);
                }
                return best;
            };
            auto pf = pass(fwd, false, knots_f);
            auto pb = pass(bwd, true, knots_b);
            out.attention_forms.push_back({f.name, pf.rms, pb.rms, false});
            fits.emplace_back(std::move(pf), std::move(pb));
        }
        auto score = [&](std::size_t i) {
            return 0.5 * (out.attention_forms[i].rms_fwd + out.attention_forms[i].rms_bwd);
        };
        // The table form only when it beats the one-rate form by half a point of rms error.
        std::size_t pick = score(2) + 0.005 < score(1) ? 2 : 1;
        if (score(0) + 0.005 < score(pick))
            pick = 0;
        out.attention_forms[pick].chosen = true;
        auto [pf, pb] = fits[pick];
        if (forms[pick].table) {
            flatten_unreached(pf.table, fwd, tile);
            flatten_unreached(pb.table, bwd, tile);
        }
        h.attention_fwd = with_floor(pf.table, tile);
        h.attention_bwd = with_floor(pb.table, tile);
        h.attention_fwd_token_pairs = pf.token_pairs;
        h.attention_bwd_token_pairs = pb.token_pairs;
        h.attention_bwd_rate_ratio = h.attention_bwd.back().tflops / h.attention_fwd.back().tflops;
        h.spread["attention_fwd"] = median_spread(fwd);
        h.spread["attention_bwd"] = median_spread(bwd);
    }

    // Collectives: ring latency and bandwidth, intra-node and inter-node apart.
    for (const bool intra : {true, false}) {
        std::vector<const rate_sample*> ss;
        for (const auto* s : select(set, rate_class::collective))
            if (s->intra_node == intra && s->group_size >= 2)
                ss.push_back(s);
        const char* bw_field = intra ? "nvlink_gbytes_per_s" : "network_gbytes_per_s";
        const char* lat_field = intra ? "nvlink_latency_us" : "network_latency_us";
        if (ss.empty()) {
            note_base(fmt::format("{} and {}", bw_field, lat_field));
            continue;
        }
        std::vector<std::vector<double>> x;
        std::vector<double> y;
        std::vector<double> sizes;
        for (const auto* s : ss) {
            const double n = s->group_size;
            if (s->op == runtime::collective_op::p2p) {
                x.push_back({s->bytes, 1.0});
            } else {
                const double k = s->op == runtime::collective_op::all_reduce ? 2.0 : 1.0;
                x.push_back({k * (n - 1.0) / n * s->bytes, k * (n - 1.0)});
            }
            y.push_back(s->seconds);
            sizes.push_back(s->bytes);
        }
        auto beta = relative_least_squares(x, y);
        const double base_bw = intra ? base.nvlink_gbytes_per_s : base.network_gbytes_per_s;
        if (beta[0] <= 0.0) { // no bandwidth in the samples: latency alone, bandwidth of the base
            std::vector<std::vector<double>> x1;
            std::vector<double> y1;
            for (std::size_t i = 0; i < x.size(); ++i) {
                x1.push_back({x[i][1]});
                y1.push_back(std::max(1e-12, y[i] - x[i][0] / (base_bw * 1e9)));
            }
            beta = {1.0 / (base_bw * 1e9), relative_least_squares(x1, y1)[0]};
            out.notes.push_back(fmt::format("{}: not separable from the latency in these samples; "
                                            "left at {}'s",
                                            bw_field, base.name));
        }
        if (beta[1] < 0.0) {
            std::vector<std::vector<double>> x1;
            for (const auto& row : x)
                x1.push_back({row[0]});
            beta = {relative_least_squares(x1, y)[0], 0.0};
        }
        const double bw = 1.0 / beta[0] / 1e9, lat = beta[1] * 1e6;
        if (intra) {
            h.nvlink_gbytes_per_s = bw;
            h.nvlink_latency_us = lat;
        } else {
            h.network_gbytes_per_s = bw;
            h.network_latency_us = lat;
        }
        h.spread[bw_field] = h.spread[lat_field] = median_spread(ss);
    }

    if (gemm.empty() && elementwise.empty() && linear.empty() && fwd.empty() && output.empty())
        throw input_error(from, "no compute sample to fit (GEMM, element-wise, linear, attention "
                                "or output layer)");

    // Residuals of every class with the fitted hardware.
    const auto costs = model_for(set, h);
    auto predict = [&](const rate_sample& s) {
        return predict_sample(s, set, h);
    };
    auto add = [&](std::string what, const std::vector<const rate_sample*>& ss) {
        if (!ss.empty())
            out.classes.push_back(summarize(std::move(what), ss, predict, out.residuals));
    };
    add("gemm", gemm);
    add("element-wise", elementwise);
    add("linear", linear);
    add("output layer", output);
    add("attention fwd", fwd);
    add("attention bwd", bwd);
    std::vector<const rate_sample*> intra, inter;
    for (const auto* s : select(set, rate_class::collective))
        (s->intra_node ? intra : inter).push_back(s);
    add("collectives intra-node", intra);
    add("collectives inter-node", inter);

    // Sources: what each fitted number rests on.
    for (const auto& c : out.classes) {
        const auto src = fmt::format("calibrated from {}: {}", from, share(c));
        if (c.what == "gemm" || c.what == "linear")
            h.sources["gemm_tflops"] = src;
        if (c.what == "gemm" && h.gemm_bwd_rate_ratio > 0.0)
            h.sources["gemm_bwd_rate_ratio"] = src;
        if (c.what == "output layer" && h.output_layer_bwd_rate_ratio > 0.0)
            h.sources["output_layer_bwd_rate_ratio"] = src;
        if (c.what == "element-wise" || c.what == "linear")
            h.sources["hbm_gbytes_per_s"] = src;
        if (c.what == "output layer")
            h.sources["output_layer_tflops"] = src;
        if (c.what == "attention fwd") {
            h.sources["attention_fwd"] = src;
            h.sources["attention_fwd_token_pairs"] = src;
        }
        if (c.what == "attention bwd") {
            h.sources["attention_bwd"] = src;
            h.sources["attention_bwd_token_pairs"] = src;
            h.sources["attention_bwd_rate_ratio"] = "the backward's long-chunk rate / the "
                                                    "forward's (calibrated)";
        }
        if (c.what == "collectives intra-node")
            h.sources["nvlink_gbytes_per_s"] = h.sources["nvlink_latency_us"] = src;
        if (c.what == "collectives inter-node")
            h.sources["network_gbytes_per_s"] = h.sources["network_latency_us"] = src;
    }
    // What ranks in lockstep lose to the slowest of them: measured as it is, no fit.
    if (set.lockstep_ranks > 1) {
        h.lockstep_penalty = set.lockstep_penalty;
        h.lockstep_ranks = set.lockstep_ranks;
        h.sources["lockstep_penalty"] =
            fmt::format("measured by {}: {} ranks running the same probe steps in lockstep, the "
                        "slowest against their mean",
                        from, set.lockstep_ranks);
    } else {
        note_base("lockstep_penalty (it needs several ranks running probes at once)");
    }
    if (h.attention_tile != base.attention_tile)
        h.sources["attention_tile"] =
            fmt::format("{} (the kernel does not pad queries)", h.attention_tile);
    (void)costs;
    return out;
}

} // namespace wlb::tuner
