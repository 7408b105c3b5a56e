#include "runtime/train/decoder.hpp"

#include "base/error.hpp"

#include <cmath>
#include <nlohmann/json.hpp>
#include <random>

namespace wlb::runtime {

void decoder_config::validate(int tp) const {
    auto bad = [](const std::string& what) {
        throw input_error("model: " + what);
    };
    if (vocab < 2 || hidden < 2 || heads < 1 || ffn < 1 || layers < 1)
        bad(fmt::format("vocab {}, hidden {}, heads {}, ffn {}, layers {}: each must be positive "
                        "(vocab and hidden at least 2)",
                        vocab, hidden, heads, ffn, layers));
    if (hidden % heads != 0 || head_dim() % 2 != 0)
        bad(fmt::format("hidden {} must be heads {} x an even head_dim", hidden, heads));
    if (vocab > (std::int64_t{1} << 30))
        bad(fmt::format("vocab {} too large", vocab));
    if (kv_heads < 0 || heads % kv_head_count() != 0)
        bad(fmt::format("heads {} must be a multiple of kv_heads {}", heads, kv_head_count()));
    if (tp < 1 || heads % tp != 0 || ffn % tp != 0)
        bad(fmt::format("heads {} and ffn {} must be divisible by tp={}", heads, ffn, tp));
    if (kv_head_count() % tp != 0)
        bad(fmt::format(
            "kv_heads {} must be divisible by tp={} (each TP rank holds whole key/value "
            "heads)",
            kv_head_count(), tp));
}

template <typename T>
void decoder_params<T>::for_each(
    const std::function<void(const std::string&, std::vector<T>&)>& fn) {
    fn("embed", embed);
    for (std::size_t l = 0; l < layers.size(); ++l) {
        auto& p = layers[l];
        const std::string n = fmt::format("layer{}.", l);
        fn(n + "norm1", p.norm1);
        fn(n + "wqkv", p.wqkv);
        fn(n + "wo", p.wo);
        fn(n + "norm2", p.norm2);
        fn(n + "w_gate", p.w_gate);
        fn(n + "w_up", p.w_up);
        fn(n + "w_down", p.w_down);
    }
    fn("final_norm", final_norm);
    fn("lm_head", lm_head);
}

template <typename T>
void decoder_params<T>::for_each(
    const std::function<void(const std::string&, const std::vector<T>&)>& fn) const {
    const_cast<decoder_params*>(this)->for_each(
        [&](const std::string& name, std::vector<T>& t) { fn(name, t); });
}

template <typename T>
decoder_params<T> decoder_params<T>::zeros_like() const {
    decoder_params z = *this;
    z.for_each([](const std::string&, std::vector<T>& t) { std::fill(t.begin(), t.end(), T(0)); });
    return z;
}

template <typename T>
decoder_params<T> init_decoder_params(const decoder_config& c, std::uint64_t seed) {
    c.validate(1);
    std::mt19937_64 rng(seed);
    auto normal = [&](std::int64_t rows, std::int64_t cols) {
        std::normal_distribution<double> dist(0.0, 1.0 / std::sqrt(static_cast<double>(rows)));
        std::vector<T> v(static_cast<std::size_t>(rows * cols));
        for (auto& x : v)
            x = static_cast<T>(dist(rng));
        return v;
    };
    auto norm = [&](std::int64_t n) {
        // Near 1 but not exactly, so a wrong norm gradient cannot hide behind a unit weight.
        std::uniform_real_distribution<double> dist(0.8, 1.2);
        std::vector<T> v(static_cast<std::size_t>(n));
        for (auto& x : v)
            x = static_cast<T>(dist(rng));
        return v;
    };
    decoder_params<T> p;
    p.embed = normal(c.hidden, c.vocab); // vocab x hidden values at the scale 1/sqrt(hidden)
    for (std::int64_t l = 0; l < c.layers; ++l) {
        decoder_layer_params<T> layer;
        layer.norm1 = norm(c.hidden);
        layer.wqkv = normal(c.hidden, c.qkv_width());
        layer.wo = normal(c.hidden, c.hidden);
        layer.norm2 = norm(c.hidden);
        layer.w_gate = normal(c.hidden, c.ffn);
        layer.w_up = normal(c.hidden, c.ffn);
        layer.w_down = normal(c.ffn, c.hidden);
        p.layers.push_back(std::move(layer));
    }
    p.final_norm = norm(c.hidden);
    p.lm_head = normal(c.hidden, c.vocab);
    return p;
}

namespace {

// Column blocks [col_begin, col_begin + cols) of a rows x width matrix.
template <typename T>
std::vector<T> take_columns(const std::vector<T>& m, std::int64_t rows, std::int64_t width,
                            std::int64_t col_begin, std::int64_t cols) {
    std::vector<T> out(static_cast<std::size_t>(rows * cols));
    for (std::int64_t r = 0; r < rows; ++r)
        for (std::int64_t c = 0; c < cols; ++c)
            out[static_cast<std::size_t>(r * cols + c)] =
                m[static_cast<std::size_t>(r * width + col_begin + c)];
    return out;
}

template <typename T>
void put_columns(std::vector<T>& m, std::int64_t rows, std::int64_t width, std::int64_t col_begin,
                 std::int64_t cols, const std::vector<T>& part) {
    for (std::int64_t r = 0; r < rows; ++r)
        for (std::int64_t c = 0; c < cols; ++c)
            m[static_cast<std::size_t>(r * width + col_begin + c)] =
                part[static_cast<std::size_t>(r * cols + c)];
}

template <typename T>
std::vector<T> take_rows(const std::vector<T>& m, std::int64_t width, std::int64_t row_begin,
                         std::int64_t rows) {
    return {m.begin() + row_begin * width, m.begin() + (row_begin + rows) * width};
}

// The three column ranges of QKV kept by TP rank t: part `which` (0 Q, 1 K, 2 V) has width(which)
// columns on one TP rank, starting at begin(which, t) in the full matrix and at local(which) in
// the rank's shard.
struct qkv_split {
    std::int64_t q_part;  // Q columns on one TP rank
    std::int64_t kv_part; // K (and V) columns on one TP rank
    int tp;
    std::int64_t width(int which) const { return which == 0 ? q_part : kv_part; }
    std::int64_t begin(int which, int t) const {
        return which == 0 ? t * q_part : q_part * tp + (which - 1) * kv_part * tp + t * kv_part;
    }
    std::int64_t local(int which) const { return which == 0 ? 0 : q_part + (which - 1) * kv_part; }
    std::int64_t local_width() const { return q_part + 2 * kv_part; }
};

qkv_split split_of(const decoder_config& c, int tp) {
    return {c.heads * c.head_dim() / tp, c.kv_head_count() * c.head_dim() / tp, tp};
}

} // namespace

template <typename T>
decoder_params<T> shard_decoder_params(const decoder_config& c, const decoder_params<T>& full,
                                       int tp, int t) {
    c.validate(tp);
    WLB_EXPECTS(t >= 0 && t < tp, "TP rank {} of {}", t, tp);
    const std::int64_t h = c.hidden, part = h / tp, f = c.ffn / tp;
    const qkv_split qs = split_of(c, tp);
    decoder_params<T> s;
    s.embed = full.embed;
    s.final_norm = full.final_norm;
    s.lm_head = full.lm_head;
    for (const auto& fl : full.layers) {
        decoder_layer_params<T> l;
        l.norm1 = fl.norm1;
        l.norm2 = fl.norm2;
        l.wqkv.resize(static_cast<std::size_t>(h * qs.local_width()));
        for (int which = 0; which < 3; ++which)
            put_columns(
                l.wqkv, h, qs.local_width(), qs.local(which), qs.width(which),
                take_columns(fl.wqkv, h, c.qkv_width(), qs.begin(which, t), qs.width(which)));
        l.wo = take_rows(fl.wo, h, t * part, part);
        l.w_gate = take_columns(fl.w_gate, h, c.ffn, t * f, f);
        l.w_up = take_columns(fl.w_up, h, c.ffn, t * f, f);
        l.w_down = take_rows(fl.w_down, h, t * f, f);
        s.layers.push_back(std::move(l));
    }
    return s;
}

template <typename T>
decoder_params<T> unshard_decoder_params(const decoder_config& c,
                                         const std::vector<decoder_params<T>>& shards) {
    const int tp = static_cast<int>(shards.size());
    c.validate(tp);
    const std::int64_t h = c.hidden, f = c.ffn / tp;
    const qkv_split qs = split_of(c, tp);
    decoder_params<T> full;
    full.embed = shards[0].embed;
    full.final_norm = shards[0].final_norm;
    full.lm_head = shards[0].lm_head;
    for (std::size_t li = 0; li < shards[0].layers.size(); ++li) {
        decoder_layer_params<T> l;
        l.norm1 = shards[0].layers[li].norm1;
        l.norm2 = shards[0].layers[li].norm2;
        l.wqkv.resize(static_cast<std::size_t>(h * c.qkv_width()));
        l.w_gate.resize(static_cast<std::size_t>(h * c.ffn));
        l.w_up.resize(static_cast<std::size_t>(h * c.ffn));
        for (int t = 0; t < tp; ++t) {
            const auto& s = shards[static_cast<std::size_t>(t)].layers[li];
            for (int which = 0; which < 3; ++which)
                put_columns(
                    l.wqkv, h, c.qkv_width(), qs.begin(which, t), qs.width(which),
                    take_columns(s.wqkv, h, qs.local_width(), qs.local(which), qs.width(which)));
            l.wo.insert(l.wo.end(), s.wo.begin(), s.wo.end());
            put_columns(l.w_gate, h, c.ffn, t * f, f, s.w_gate);
            put_columns(l.w_up, h, c.ffn, t * f, f, s.w_up);
            l.w_down.insert(l.w_down.end(), s.w_down.begin(), s.w_down.end());
        }
        full.layers.push_back(std::move(l));
    }
    return full;
}

template <typename T>
decoder_params<T> stage_decoder_params(const decoder_params<T>& params, int pp, int s, int vpp) {
    const auto layers = static_cast<int>(params.layers.size());
    if (pp < 1 || vpp < 1 || layers < pp * vpp)
        throw input_error(fmt::format("model: {} layers cannot fill pp={} x vpp={} model chunks",
                                      layers, pp, vpp));
    WLB_EXPECTS(s >= 0 && s < pp, "stage {} of {}", s, pp);
    decoder_params<T> out;
    if (s == 0)
        out.embed = params.embed;
    const int chunks = pp * vpp;
    for (int v = 0; v < vpp; ++v) {
        const int c = v * pp + s;
        const auto begin = static_cast<std::ptrdiff_t>(layers * c / chunks);
        const auto end = static_cast<std::ptrdiff_t>(layers * (c + 1) / chunks);
        out.layers.insert(out.layers.end(), params.layers.begin() + begin,
                          params.layers.begin() + end);
    }
    if (s == pp - 1) {
        out.final_norm = params.final_norm;
        out.lm_head = params.lm_head;
    }
    return out;
}

template <typename T>
void apply_sgd(decoder_params<T>& params, const decoder_params<T>& grads, double learning_rate) {
    std::vector<const std::vector<T>*> g;
    grads.for_each([&](const std::string&, const std::vector<T>& t) { g.push_back(&t); });
    std::size_t i = 0;
    params.for_each([&](const std::string& name, std::vector<T>& p) {
        const auto& gt = *g[i++];
        WLB_EXPECTS(gt.size() == p.size(), "sgd: {} has {} values, its gradient {}", name, p.size(),
                    gt.size());
        for (std::size_t j = 0; j < p.size(); ++j)
            p[j] -= static_cast<T>(learning_rate * static_cast<double>(gt[j]));
    });
}

std::int32_t document_token(std::int64_t doc_id, std::int64_t position, std::int64_t vocab) {
    // splitmix64 of (doc, position): cheap, stateless, well mixed.
    std::uint64_t z = static_cast<std::uint64_t>(doc_id) * 0x9e3779b97f4a7c15ULL +
                      static_cast<std::uint64_t>(position) + 0x632be59bd9b4e019ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return static_cast<std::int32_t>(z % static_cast<std::uint64_t>(vocab));
}

#define WLB_INSTANTIATE(T)                                                                         \
    template struct decoder_params<T>;                                                             \
    template decoder_params<T> init_decoder_params<T>(const decoder_config&, std::uint64_t);       \
    template decoder_params<T> shard_decoder_params<T>(const decoder_config&,                      \
                                                       const decoder_params<T>&, int, int);        \
    template decoder_params<T> unshard_decoder_params<T>(const decoder_config&,                    \
                                                         const std::vector<decoder_params<T>>&);   \
    template void apply_sgd<T>(decoder_params<T>&, const decoder_params<T>&, double);              \
    template decoder_params<T> stage_decoder_params<T>(const decoder_params<T>&, int, int, int);
WLB_INSTANTIATE(float)
WLB_INSTANTIATE(double)
#undef WLB_INSTANTIATE

decoder_config decoder_config_of(const model_spec& m) {
    if (m.kv_heads != m.heads)
        throw input_error(fmt::format("model {}: the CPU decoder trains multi-head attention "
                                      "(kv_heads = heads); this model has {} KV heads for {} "
                                      "heads (grouped-query attention)",
                                      m.name, m.kv_heads, m.heads));
    if (!m.gated_mlp)
        throw input_error(fmt::format("model {}: the CPU decoder trains a SwiGLU MLP "
                                      "(gated_mlp true)",
                                      m.name));
    return device_decoder_config_of(m);
}

decoder_config device_decoder_config_of(const model_spec& m) {
    if (!m.gated_mlp)
        throw input_error(
            fmt::format("model {}: the decoder trains a SwiGLU MLP (gated_mlp true)", m.name));
    decoder_config c;
    c.name = m.name;
    c.vocab = m.vocab;
    c.hidden = m.hidden;
    c.heads = m.heads;
    c.kv_heads = m.kv_heads == m.heads ? 0 : m.kv_heads;
    c.ffn = m.ffn;
    c.layers = m.layers;
    c.norm_eps = m.norm_eps;
    c.rope_base = m.rope_base;
    c.validate(1);
    return c;
}

model_spec model_spec_of(const decoder_config& d) {
    model_spec m;
    m.name = d.name;
    m.layers = static_cast<int>(d.layers);
    m.hidden = static_cast<int>(d.hidden);
    m.heads = static_cast<int>(d.heads);
    m.kv_heads = static_cast<int>(d.kv_head_count());
    m.ffn = static_cast<int>(d.ffn);
    m.vocab = static_cast<int>(d.vocab);
    m.norm_eps = d.norm_eps;
    m.rope_base = d.rope_base;
    m.source = "a decoder built by hand (runtime/train/decoder.hpp)";
    return m;
}

nlohmann::json to_json(const decoder_config& c) {
    nlohmann::json j = {{"name", c.name},
                        {"vocab", c.vocab},
                        {"hidden", c.hidden},
                        {"heads", c.heads},
                        {"ffn", c.ffn},
                        {"layers", c.layers},
                        {"norm_eps", c.norm_eps},
                        {"rope_base", c.rope_base},
                        {"parameters", decoder_parameter_count(c)}};
    if (c.kv_head_count() != c.heads)
        j["kv_heads"] = c.kv_head_count();
    return j;
}

std::int64_t decoder_parameter_count(const decoder_config& c) {
    const std::int64_t h = c.hidden;
    const std::int64_t layer = 2 * h + h * c.qkv_width() + h * h + 3 * h * c.ffn;
    return 2 * c.vocab * h + h + c.layers * layer;
}

std::vector<int> decoder_chunk_layers(std::int64_t layers, int chunks) {
    WLB_EXPECTS(chunks >= 1 && layers >= chunks, "{} layers in {} chunks", layers, chunks);
    std::vector<int> out;
    for (int c = 0; c < chunks; ++c)
        out.push_back(static_cast<int>(layers * (c + 1) / chunks - layers * c / chunks));
    return out;
}

} // namespace wlb::runtime
