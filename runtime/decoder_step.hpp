// One training step of the decoder (runtime/decoder.hpp) on one rank, with tensor, context and
// data parallelism over the communicator seam: forward, loss and backward computed exactly, and
// the gradients reduced over CP and DP so that every rank ends with the gradients of the whole
// global batch for its TP shard of the parameters.
//
// - TP (Megatron): QKV and the MLP's gate/up are column-parallel, the output projection and the
//   MLP's down projection row-parallel; the row-parallel outputs and the gradients of the
//   column-parallel inputs are all-reduced in the TP group.
// - CP (Llama 3, WLB-LLM): each CP rank holds the chunks its shard lists (any chunk shapes: per
//   sequence, per document, adaptive, hybrid). K and V are all-gathered in the CP group (each
//   rank's rows padded to the longest rank's), every local chunk attends the keys [0, q_offset +
//   q_tokens) of its document, and in backward the key and value gradients of all ranks are
//   reduce-scattered back to the ranks that hold those tokens.
// - DP: replica d of the global batch runs on DP rank d; gradients and the loss are summed over
//   CP and DP.
// The loss is the mean next-token cross-entropy over every labelled token of the global batch
// (each document's last token has no label), so any layout computes the same number.
#pragma once

#include "runtime/batch.hpp"
#include "runtime/communicator.hpp"
#include "runtime/decoder.hpp"

#include <vector>

namespace wlb::runtime {

/// The communicators of one rank; any of them may have size 1.
struct parallel_groups {
    communicator& tp;
    communicator& cp;
    communicator& dp;
};

template <typename T>
struct step_gradients {
    double loss = 0;                  ///< mean over the global batch's labelled tokens
    std::int64_t labelled_tokens = 0; ///< of the global batch
    decoder_params<T> grads;          ///< this rank's TP shard, summed over the global batch
};

/// shards[d][m] is the CP sharding of micro-batch m of replica d of the batch.
using batch_shards = std::vector<std::vector<sharded_micro_batch>>;

/// Forward and backward of a global batch. Collective over tp, cp and dp: every rank passes the
/// same batch and shards; `local` is this rank's TP shard (shard_decoder_params with tp.rank()).
/// Throws wlb::input_error when the batch does not fit the groups (replicas != dp.size(), a
/// shard with another CP degree, or chunks that do not tile their documents).
template <typename T>
[[nodiscard]] step_gradients<T>
compute_step_gradients(const decoder_config& config, const decoder_params<T>& local,
                       const global_batch& batch, const batch_shards& shards,
                       const parallel_groups& groups);

/// Checks that the CP ranks' chunks of `shard` tile every document of `mb` exactly once and name
/// no other document. Throws wlb::input_error naming `where`, the document and the gap/overlap.
void validate_shard(const micro_batch& mb, const sharded_micro_batch& shard, int cp,
                    std::string_view where);

/// The unsharded form of a batch: one CP rank with one chunk per whole document.
[[nodiscard]] sharded_micro_batch whole_documents(const micro_batch& mb);

} // namespace wlb::runtime
