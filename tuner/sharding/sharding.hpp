// Context-parallel sharding (design.md section 2, "CP sharder"; WLB-LLM section 5): one
// interface for every policy that maps a packed micro-batch to per-CP-rank chunk lists.
//
//   per-seq   the packed sequence cut into 2*CP chunks, rank i holds chunks i and 2CP-1-i
//             (Llama 3, Megatron)                                  tuner/sharding/shard_per_seq.hpp
//   per-doc   every document cut into 2*CP chunks the same way, remainder tokens dealt
//             round-robin (WLB-LLM section 5.1)                    tuner/sharding/shard_per_doc.hpp
//   adaptive  per micro-batch the faster of per-seq and per-doc (WLB-LLM section 5.2)
//                                                                  tuner/sharding/shard_adaptive.hpp
//   hybrid    long documents per-doc, short documents whole and placed to even out the ranks;
//             never predicted worse than the better of per-seq and per-doc
//                                                                  tuner/sharding/shard_hybrid.hpp
//
// Contract of every policy's output (checked by find_sharding_error and the property tests):
// every token of every document of the micro-batch is held by exactly one CP rank, as the query
// of exactly one chunk; chunks are non-empty; a rank's chunks of one document never overlap.
// "Predicted worse" is defined once, in tuner/sharding/shard_metrics.hpp (shard_metrics::
// predicted_seconds).
#pragma once

#include "runtime/parallel/batch.hpp"

#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wlb::tuner {

class cost_model;

enum class sharding_policy { per_seq, per_doc, adaptive, hybrid };

/// "per-seq", "per-doc", "adaptive", "hybrid".
[[nodiscard]] std::string_view to_string(sharding_policy p) noexcept;
/// The inverse of to_string; throws wlb::input_error naming `what` and listing the names.
[[nodiscard]] sharding_policy parse_sharding_policy(std::string_view text, std::string_view what);
[[nodiscard]] std::vector<std::string> sharding_policy_names();

/// A policy and its parameters, as the CLI takes it and the plan header carries it.
struct sharding_spec {
    sharding_policy policy = sharding_policy::adaptive;
    /// hybrid only: documents of at least this many tokens are sharded per document, shorter
    /// ones are kept whole. std::nullopt = auto: per micro-batch, try every distinct document
    /// length of the micro-batch (and "none") as the threshold and keep the best prediction.
    std::optional<std::int64_t> hybrid_threshold_tokens;
    /// hybrid only: the token balance (max over ranks / mean tokens) its own layout may reach;
    /// whole documents are placed only on ranks that stay within it (memory: activations grow
    /// with a rank's tokens), and a layout beyond it is never chosen.
    double hybrid_max_token_imbalance = 1.05;
};

/// {"policy": "hybrid", "hybrid_threshold_tokens": 8192 | "auto",
/// "hybrid_max_token_imbalance": 1.05} (the hybrid fields only for hybrid).
nlohmann::json to_json(const sharding_spec& s);
/// Throws wlb::input_error naming `where` (file and JSON path) on a bad object.
sharding_spec sharding_spec_from_json(const nlohmann::json& j, std::string_view where);
/// "adaptive", "hybrid (threshold auto, token imbalance <= 1.05)": a spec in words.
std::string describe_sharding(const sharding_spec& s);
/// "auto" or a token count ("8k", "8192") for --hybrid-threshold.
std::optional<std::int64_t> parse_hybrid_threshold(std::string_view text, std::string_view what);

/// What a sharder did with one micro-batch.
struct shard_decision {
    runtime::sharded_micro_batch sharded;
    /// The layout actually applied: per_seq or per_doc (adaptive picks one of them), or hybrid
    /// (or per_seq / per_doc when hybrid fell back to the better of them).
    sharding_policy applied = sharding_policy::per_seq;
    /// hybrid applied: the length threshold used (documents >= it were sharded per document);
    /// std::nullopt when hybrid was not applied or auto chose to keep every document whole.
    std::optional<std::int64_t> threshold_tokens;
    bool fell_back = false; ///< hybrid only: its own layout predicted worse, so it fell back
};

/// The decisions for one step, [DP replica][micro-batch], in the step's order: what a plan
/// records per micro-batch (tuner/plan/plan_io.hpp).
using step_sharding = std::vector<std::vector<shard_decision>>;

/// Whether two shardings give every rank the same chunks in the same order.
[[nodiscard]] bool same_chunks(const runtime::sharded_micro_batch& a,
                               const runtime::sharded_micro_batch& b) noexcept;

/// One interface for all policies. CP degree, model, hardware and TP come from the cost model
/// given at construction (adaptive and hybrid predict with it; per-seq and per-doc use only its
/// layout's cp).
class sharder {
public:
    virtual ~sharder() = default;
    [[nodiscard]] virtual sharding_spec spec() const = 0;
    /// Shards one micro-batch over cp ranks. Document ids must be unique in the micro-batch.
    [[nodiscard]] virtual shard_decision shard(const runtime::micro_batch& mb) const = 0;
};

/// Throws wlb::input_error when `mb` cannot be sharded: a document with no tokens, a negative id,
/// or an id that appears twice (a chunk names its document by id).
void check_shardable(const runtime::micro_batch& mb);

/// Appends a chunk to a rank, merging it into the rank's last chunk when that one is of the same
/// document and ends where this one starts (one contiguous query range is one kernel sequence:
/// at cp = 1 per-seq and per-doc both give every document whole). Empty chunks are dropped.
void append_chunk(runtime::cp_shard& shard, const runtime::chunk& c);

/// The first violation of the output contract above, or std::nullopt when the sharding is
/// valid for `mb`: a token held twice or by no rank, a chunk outside its document or of an
/// unknown document, an empty chunk.
[[nodiscard]] std::optional<std::string> find_sharding_error(const runtime::micro_batch& mb,
                                                             const runtime::sharded_micro_batch& s);

} // namespace wlb::tuner
