// Where the tokens of one micro-batch live in the device step (issue [cuda-run]), for one CP rank
// and one TP rank: the buffer plan and the communication plan of the layer, host data that the
// device step uploads once per micro-batch.
//
// - CP (Llama 3, WLB-LLM): CP rank r holds the query tokens of its chunks, in chunk order (the
//   CPU step's layout, runtime/train/decoder_step.hpp). Its rows are padded to `rows`, a multiple
//   of TP of at least TP; padding rows carry token 0 (embedding), position 0 (rotary), label -1
//   (no loss) and belong to no attention chunk, so their outputs and gradients stay zero.
// - TP (Megatron sequence parallelism): TP rank t holds rows [t * shard_rows, (t+1) *
//   shard_rows) between the layers (norms, residuals, the output layer and the pipeline
//   transfers), and every TP rank holds all `rows` inside the attention and the MLP (all-gather
//   before the column-parallel GEMMs, reduce-scatter after the row-parallel ones).
// - Key/value exchange: each CP rank's K/V rows, padded to `block_rows` (the longest CP rank's
//   rows), are all-gathered; row i of CP rank r lands at r * block_rows + i. Each local chunk
//   attends the key segment of its document [0, q_offset + q_tokens): segment row j is gathered
//   from all-gathered row kv_sources[j] (kv_offsets: one source per row, CSR form), and in the
//   backward each all-gathered row receives the sum of the segment rows that read it
//   (dkv_offsets / dkv_sources, the transposed map) before the reduce-scatter sends it home.
//   kv_local: the segments are exactly this rank's own rows in order (one CP rank, whole
//   documents): the step then reads K and V where the QKV projection wrote them.
#pragma once

#include "runtime/parallel/batch.hpp"

#include <cstdint>
#include <vector>

namespace wlb::runtime {

struct token_plan {
    int cp = 1;
    int tp = 1;
    std::int64_t tokens = 0;                ///< real query tokens of this CP rank
    std::int64_t rows = 0;                  ///< tokens padded to a multiple of tp, at least tp
    std::int64_t shard_rows = 0;            ///< rows / tp: one TP rank's sequence slice
    std::int64_t block_rows = 0;            ///< the largest `rows` over the CP ranks
    std::vector<std::int64_t> positions;    ///< rows: position in the document (padding: 0)
    std::vector<std::int32_t> shard_ids;    ///< shard_rows: this TP rank's tokens (padding: 0)
    std::vector<std::int32_t> shard_labels; ///< shard_rows: next token, -1 at a document's end
    /// This rank's attention chunks (those with queries), kernels::attention_chunks' arrays.
    std::vector<std::int64_t> cu_q{0}, cu_k{0}, q_offsets;
    bool kv_local = false;
    std::int64_t kv_rows = 0;                           ///< cu_k.back(): rows of the key segments
    std::vector<std::int64_t> kv_offsets, kv_sources;   ///< kv_rows + 1 offsets
    std::vector<std::int64_t> dkv_offsets, dkv_sources; ///< cp * block_rows + 1 offsets

    /// Labels of this TP rank's slice that are >= 0.
    [[nodiscard]] std::int64_t labelled() const noexcept;
};

/// The plan of CP rank `cp_rank` and TP rank `tp_rank` (of tp) for micro-batch `mb` sharded by
/// `shard` (validated by the caller: runtime::validate_shard); token ids from
/// runtime::document_token over `vocab`.
[[nodiscard]] token_plan plan_tokens(const micro_batch& mb, const sharded_micro_batch& shard,
                                     int cp_rank, int tp, int tp_rank, std::int64_t vocab);

} // namespace wlb::runtime
