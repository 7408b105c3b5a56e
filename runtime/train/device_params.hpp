// One rank's parameters on a compute device (issue [cuda-run]): its part of the decoder
// (stage_decoder_params(shard_decoder_params(...)), runtime/train/decoder.hpp) laid out in ONE
// flat buffer per role: fp32 master weights, bf16 working weights (what the kernels read,
// refreshed from the master after every update) and fp32 gradients (accumulated over the
// micro-batches of a step). One layout, the same offsets in all three.
//
// The tensors that every TP rank holds whole (the embedding, the norms, the LM head) come first:
// with sequence parallelism each TP rank computes their gradients from its own slice of the
// tokens, so the step all-reduces exactly that prefix over the TP group, then the whole buffer
// over CP and DP (CP ranks hold the same weights, runtime/plan/step_plan.hpp).
#pragma once

#include "runtime/train/decoder.hpp"

#include <cstddef>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace wlb::runtime {

struct param_slot {
    std::size_t offset = 0;
    std::size_t count = 0; ///< 0: this rank does not hold the tensor
};

class device_param_layout {
public:
    /// The layout of tensors named and sized as decoder_params::for_each lists them.
    explicit device_param_layout(const std::vector<std::pair<std::string, std::size_t>>& tensors);

    struct layer_slots {
        param_slot norm1, wqkv, wo, norm2, w_gate, w_up, w_down;
    };

    [[nodiscard]] std::size_t total() const noexcept { return m_total; }
    /// The TP-replicated prefix [0, replicated()).
    [[nodiscard]] std::size_t replicated() const noexcept { return m_replicated; }
    [[nodiscard]] const param_slot& embed() const noexcept { return m_embed; }
    [[nodiscard]] const param_slot& final_norm() const noexcept { return m_final_norm; }
    [[nodiscard]] const param_slot& lm_head() const noexcept { return m_lm_head; }
    /// Local layer l (the stage's layers in stage_decoder_params' order).
    [[nodiscard]] const layer_slots& layer(std::size_t l) const { return m_layers.at(l); }
    [[nodiscard]] std::size_t layers() const noexcept { return m_layers.size(); }

    /// Calls fn(name, slot) for every tensor this rank holds (count > 0), replicated first.
    void for_each(const std::function<void(const std::string&, const param_slot&)>& fn) const;
    /// `p`'s values at their offsets (p has the layout's shapes).
    [[nodiscard]] std::vector<float> flatten(const decoder_params<float>& p) const;
    /// The inverse: tensors of `shape`'s sizes from a flat buffer.
    [[nodiscard]] decoder_params<float> unflatten(const std::vector<float>& flat,
                                                  const decoder_params<float>& shape) const;
    /// True for the tensors every TP rank holds whole.
    [[nodiscard]] static bool tp_replicated(const std::string& name);

private:
    param_slot& slot_of(const std::string& name);

    std::vector<std::pair<std::string, param_slot>> m_order; ///< replicated first
    std::size_t m_total = 0;
    std::size_t m_replicated = 0;
    param_slot m_embed, m_final_norm, m_lm_head;
    std::vector<layer_slots> m_layers;
};

/// The tensors of TP rank `tp_rank`'s part of pipeline stage `stage` (of pp, vpp model chunks per
/// stage), named and sized as stage_decoder_params(shard_decoder_params(...)) holds them, in
/// decoder_params::for_each order, without computing any value.
[[nodiscard]] std::vector<std::pair<std::string, std::size_t>>
local_param_sizes(const decoder_config& config, int tp, int pp, int stage, int vpp);

} // namespace wlb::runtime
