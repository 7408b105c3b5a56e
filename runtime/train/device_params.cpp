#include "runtime/train/device_params.hpp"

#include "base/error.hpp"

#include <algorithm>

namespace wlb::runtime {

bool device_param_layout::tp_replicated(const std::string& name) {
    return name == "embed" || name == "final_norm" || name == "lm_head" ||
           name.ends_with(".norm1") || name.ends_with(".norm2");
}

param_slot& device_param_layout::slot_of(const std::string& name) {
    if (name == "embed")
        return m_embed;
    if (name == "final_norm")
        return m_final_norm;
    if (name == "lm_head")
        return m_lm_head;
    // "layer<l>.<tensor>"
    const auto dot = name.find('.');
    WLB_EXPECTS(name.starts_with("layer") && dot != std::string::npos, "parameter {}", name);
    const auto l = static_cast<std::size_t>(std::stoul(name.substr(5, dot - 5)));
    if (m_layers.size() <= l)
        m_layers.resize(l + 1);
    auto& s = m_layers[l];
    const auto tensor = name.substr(dot + 1);
    if (tensor == "norm1")
        return s.norm1;
    if (tensor == "wqkv")
        return s.wqkv;
    if (tensor == "wo")
        return s.wo;
    if (tensor == "norm2")
        return s.norm2;
    if (tensor == "w_gate")
        return s.w_gate;
    if (tensor == "w_up")
        return s.w_up;
    WLB_EXPECTS(tensor == "w_down", "parameter {}", name);
    return s.w_down;
}

device_param_layout::device_param_layout(
    const std::vector<std::pair<std::string, std::size_t>>& tensors) {
    for (const bool replicated : {true, false}) {
        for (const auto& [name, count] : tensors) {
            if (tp_replicated(name) != replicated)
                continue;
            auto& s = slot_of(name);
            s.offset = m_total;
            s.count = count;
            m_total += count;
            if (count > 0)
                m_order.emplace_back(name, s);
        }
        if (replicated)
            m_replicated = m_total;
    }
}

void device_param_layout::for_each(
    const std::function<void(const std::string&, const param_slot&)>& fn) const {
    for (const auto& [name, slot] : m_order)
        fn(name, slot);
}

std::vector<std::pair<std::string, std::size_t>> local_param_sizes(const decoder_config& c, int tp,
                                                                   int pp, int stage, int vpp) {
    c.validate(tp);
    WLB_EXPECTS(pp >= 1 && vpp >= 1 && stage >= 0 && stage < pp, "stage {} of pp={} x vpp={}",
                stage, pp, vpp);
    if (c.layers < static_cast<std::int64_t>(pp) * vpp)
        throw input_error(fmt::format("model {}: {} layers cannot fill pp={} x vpp={} model chunks",
                                      c.name, c.layers, pp, vpp));
    const auto h = static_cast<std::size_t>(c.hidden);
    const auto vocab = static_cast<std::size_t>(c.vocab);
    const auto qkv = static_cast<std::size_t>(c.qkv_width() / tp);
    const auto q = static_cast<std::size_t>(c.heads * c.head_dim() / tp);
    const auto f = static_cast<std::size_t>(c.ffn / tp);
    std::vector<std::pair<std::string, std::size_t>> out;
    out.emplace_back("embed", stage == 0 ? vocab * h : 0);
    const auto chunk_layers = decoder_chunk_layers(c.layers, pp * vpp);
    std::size_t layer = 0;
    for (int v = 0; v < vpp; ++v)
        for (int i = 0; i < chunk_layers[static_cast<std::size_t>(v * pp + stage)]; ++i, ++layer) {
            const std::string n = fmt::format("layer{}.", layer);
            out.emplace_back(n + "norm1", h);
            out.emplace_back(n + "wqkv", h * qkv);
            out.emplace_back(n + "wo", q * h);
            out.emplace_back(n + "norm2", h);
            out.emplace_back(n + "w_gate", h * f);
            out.emplace_back(n + "w_up", h * f);
            out.emplace_back(n + "w_down", f * h);
        }
    out.emplace_back("final_norm", stage == pp - 1 ? h : 0);
    out.emplace_back("lm_head", stage == pp - 1 ? h * vocab : 0);
    return out;
}

std::vector<float> device_param_layout::flatten(const decoder_params<float>& p) const {
    std::vector<float> flat(m_total);
    auto* self = const_cast<device_param_layout*>(this); // slot_of only reads existing slots
    p.for_each([&](const std::string& name, const std::vector<float>& t) {
        const auto& s = self->slot_of(name);
        WLB_EXPECTS(s.count == t.size(), "parameter {}: {} values, the layout has {}", name,
                    t.size(), s.count);
        std::copy(t.begin(), t.end(), flat.begin() + static_cast<std::ptrdiff_t>(s.offset));
    });
    return flat;
}

decoder_params<float> device_param_layout::unflatten(const std::vector<float>& flat,
                                                     const decoder_params<float>& shape) const {
    WLB_EXPECTS(flat.size() == m_total, "{} values for a layout of {}", flat.size(), m_total);
    decoder_params<float> out = shape;
    auto* self = const_cast<device_param_layout*>(this);
    out.for_each([&](const std::string& name, std::vector<float>& t) {
        const auto& s = self->slot_of(name);
        WLB_EXPECTS(s.count == t.size(), "parameter {}: {} values, the layout has {}", name,
                    t.size(), s.count);
        std::copy_n(flat.begin() + static_cast<std::ptrdiff_t>(s.offset), s.count, t.begin());
    });
    return out;
}

} // namespace wlb::runtime
