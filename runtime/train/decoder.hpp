// A decoder-only transformer small enough for CPUs with the real structure (issue [cpu-runtime]):
// token embedding; per layer RMSNorm, fused QKV projection with rotary embedding, causal
// attention under the document mask, output projection, residual, RMSNorm, SwiGLU MLP,
// residual; final RMSNorm, LM head and softmax cross-entropy on the next token of each document.
//
// Parameters and their tensor-parallel (Megatron) split over TP rank t of TP:
//   embed      [vocab x hidden]             replicated
//   norm1/2    [hidden]                     replicated
//   wqkv       [hidden x 3*hidden]          column-parallel: Q, K and V each keep the columns of
//                                           heads [t*H/TP, (t+1)*H/TP); local [hidden x
//                                           3*hidden/TP]. With KV < H key/value heads (grouped-
//                                           query attention, device step only) it is [hidden x
//                                           (H + 2 KV) * head_dim]: Q keeps heads [t*H/TP, ..),
//                                           K and V heads [t*KV/TP, (t+1)*KV/TP)
//   wo         [hidden x hidden]            row-parallel: the rows of the same heads
//   w_gate/up  [hidden x ffn]               column-parallel: columns [t*ffn/TP, (t+1)*ffn/TP)
//   w_down     [ffn x hidden]               row-parallel: the same rows
//   final_norm [hidden], lm_head [hidden x vocab]  replicated
// Matrices are row-major; activations are token-major (x @ W).
#pragma once

#include "runtime/model/model_spec.hpp"

#include <cstdint>
#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace wlb::runtime {

struct decoder_config {
    std::string name = "custom"; ///< a preset's name, or what a file calls the model
    std::int64_t vocab = 32;
    std::int64_t hidden = 16;
    std::int64_t heads = 4;
    /// Key/value heads (grouped-query attention: query head h reads key/value head h / (heads /
    /// kv_heads)); 0: heads (multi-head attention). The CPU step trains multi-head attention
    /// only; the device step (runtime/train/device_decoder.hpp) trains both.
    std::int64_t kv_heads = 0;
    std::int64_t ffn = 32;
    std::int64_t layers = 2;
    double norm_eps = 1e-5;
    double rope_base = 10000.0;

    [[nodiscard]] std::int64_t head_dim() const noexcept { return hidden / heads; }
    [[nodiscard]] std::int64_t kv_head_count() const noexcept {
        return kv_heads == 0 ? heads : kv_heads;
    }
    /// Columns of the fused QKV projection: (heads + 2 kv heads) x head_dim.
    [[nodiscard]] std::int64_t qkv_width() const noexcept {
        return (heads + 2 * kv_head_count()) * head_dim();
    }
    /// Throws wlb::input_error when the shape is inconsistent or does not split over `tp`
    /// (heads, key/value heads and ffn each divisible by tp).
    void validate(int tp) const;
};

/// The decoder of a model from the registry (runtime/model/model_spec.hpp). The CPU decoder
/// trains multi-head attention with a SwiGLU MLP in numbers the host can hold: a model with
/// grouped-query attention (kv_heads < heads) or a plain MLP is wlb::input_error saying so, as is
/// a shape validate(1) refuses.
[[nodiscard]] decoder_config decoder_config_of(const model_spec& m);
/// The decoder of a model from the registry for the device step, which also trains
/// grouped-query attention (kv_heads < heads); a plain MLP is wlb::input_error.
[[nodiscard]] decoder_config device_decoder_config_of(const model_spec& m);
/// The registry's view of a decoder built by hand (tests, benchmarks): its kv heads, SwiGLU.
[[nodiscard]] model_spec model_spec_of(const decoder_config& d);
[[nodiscard]] nlohmann::json to_json(const decoder_config& c);
/// Parameters of the full model (every tensor of decoder_params).
[[nodiscard]] std::int64_t decoder_parameter_count(const decoder_config& c);

/// Layers of each model chunk when `layers` layers are cut into `chunks` near-equal contiguous
/// chunks: chunk c holds layers [layers*c/chunks, layers*(c+1)/chunks). The cut of
/// stage_decoder_params and compute_step_gradients (and what the simulator is given to predict
/// a run).
[[nodiscard]] std::vector<int> decoder_chunk_layers(std::int64_t layers, int chunks);

template <typename T>
struct decoder_layer_params {
    std::vector<T> norm1, wqkv, wo, norm2, w_gate, w_up, w_down;
};

/// Full parameters, or one TP rank's shard of them (see the header comment); also the shape of
/// gradients.
template <typename T>
struct decoder_params {
    std::vector<T> embed;
    std::vector<decoder_layer_params<T>> layers;
    std::vector<T> final_norm, lm_head;

    /// Calls fn(name, tensor) for every tensor in a fixed order ("layer1.wqkv", ...).
    void for_each(const std::function<void(const std::string&, std::vector<T>&)>& fn);
    void for_each(const std::function<void(const std::string&, const std::vector<T>&)>& fn) const;
    /// Same shapes, every value zero.
    [[nodiscard]] decoder_params zeros_like() const;
};

/// Deterministic full parameters from `seed` (scaled normal values; norms start at 1).
template <typename T>
[[nodiscard]] decoder_params<T> init_decoder_params(const decoder_config& config,
                                                    std::uint64_t seed);

/// TP rank t's shard of full parameters (or gradients).
template <typename T>
[[nodiscard]] decoder_params<T> shard_decoder_params(const decoder_config& config,
                                                     const decoder_params<T>& full, int tp, int t);

/// Inverse of shard_decoder_params: the full tensors from the TP shards in TP rank order
/// (replicated tensors are taken from shard 0).
template <typename T>
[[nodiscard]] decoder_params<T>
unshard_decoder_params(const decoder_config& config, const std::vector<decoder_params<T>>& shards);

/// Pipeline stage s of PP's part of (full or TP-sharded) parameters. The L layers are cut into
/// PP x VPP near-equal contiguous model chunks; stage s holds chunks s, s + PP, ..., s + (VPP-1)
/// x PP, their layers concatenated in that order; the embedding on stage 0 only, the final norm
/// and LM head on stage PP-1 only (tensors a stage does not hold are empty). Throws
/// wlb::input_error when the model has fewer layers than chunks.
template <typename T>
[[nodiscard]] decoder_params<T> stage_decoder_params(const decoder_params<T>& params, int pp, int s,
                                                     int vpp = 1);

/// params -= learning_rate * grads, tensor by tensor (plain SGD, applied after the DP reduction).
template <typename T>
void apply_sgd(decoder_params<T>& params, const decoder_params<T>& grads, double learning_rate);

/// The synthetic token ids of a document: a deterministic function of (doc id, position), in
/// [0, vocab). Every rank derives the same tokens from the batch alone.
[[nodiscard]] std::int32_t document_token(std::int64_t doc_id, std::int64_t position,
                                          std::int64_t vocab);

} // namespace wlb::runtime
