// One training step of the decoder (runtime/train/decoder.hpp) on one rank, with tensor, context
// and data parallelism over the communicator seam: forward, loss and backward computed exactly, and
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
// - PP: the layers are cut into PP x VPP model chunks; stage s holds chunks s, s+PP, ...
//   (stage_decoder_params), chunk 0's stage the embedding, the last chunk's the final norm and
//   LM head; activations go forward and gradients back between the stages of consecutive chunks
//   by send/recv, in the order of the stage's op list.
// - DP: replica d of the global batch runs on DP rank d; gradients are summed over CP and DP,
//   the loss over CP, DP and PP (only the last stage computes it).
// The loss is the mean next-token cross-entropy over every labelled token of the global batch
// (each document's last token has no label), so any layout computes the same number.
#pragma once

#include "runtime/comm/communicator.hpp"
#include "runtime/parallel/batch.hpp"
#include "runtime/parallel/pipeline_schedule.hpp"
#include "runtime/trace/step_observer.hpp"
#include "runtime/train/decoder.hpp"

#include <vector>

namespace wlb::runtime {

/// The communicators of one rank; any of them may have size 1. pp may be null (one stage).
/// virtual_stages is the layout's vpp: each stage holds that many model chunks (interleaved
/// pipeline), chunk c = v * PP + stage.
struct parallel_groups {
    communicator& tp;
    communicator& cp;
    communicator& dp;
    communicator* pp = nullptr;
    int virtual_stages = 1;
    /// When set, told every operation of the step with host timestamps (capture).
    step_observer* observer = nullptr;
};

/// One operation of a pipeline stage's order: the forward or the backward of one micro-batch
/// (an index into the stage's replica's micro-batches). The [simulator] issue's schedules (1F1B,
/// interleaved) are lists of these per stage; executing a list is this file's job, choosing it
/// is theirs.
struct stage_op {
    enum class kind : std::uint8_t { forward, backward };
    kind op = kind::forward;
    int micro_batch = 0;
    int virtual_stage = 0; ///< which of the stage's model chunks (0 without interleaving)
    friend bool operator==(const stage_op&, const stage_op&) = default;
};

/// All forwards (each micro-batch through the stage's virtual stages in order), then all
/// backwards in reverse (GPipe): valid for any stage.
[[nodiscard]] std::vector<stage_op> all_forward_all_backward(int micro_batches,
                                                             int virtual_stages = 1);

/// The op list of pipeline stage `stage` under one of the simulator's schedules (1F1B,
/// interleaved, Llama 3's; runtime/parallel/pipeline_schedule.hpp's pipeline_order), so the
/// executor runs exactly the order the simulator predicts. Throws wlb::input_error as
/// pipeline_order does (e.g. an interleaved schedule over a micro-batch count that is not a
/// multiple of its group).
[[nodiscard]] std::vector<stage_op> schedule_stage_ops(int pp, int vpp, int micro_batches,
                                                       int stage, const schedule_options& schedule);

template <typename T>
struct step_gradients {
    double loss = 0;                  ///< mean over the global batch's labelled tokens
    std::int64_t labelled_tokens = 0; ///< of the global batch
    decoder_params<T> grads;          ///< this rank's TP shard, summed over the global batch
};

/// shards[d][m] is the CP sharding of micro-batch m of replica d of the batch.
using batch_shards = std::vector<std::vector<sharded_micro_batch>>;

/// Forward and backward of a global batch. Collective over tp, cp, dp and pp: every rank passes
/// the same batch and shards; `local` is this rank's part of the parameters:
/// stage_decoder_params(shard_decoder_params(full, TP, tp.rank()), PP, pp.rank()). `order` is
/// this stage's op list over its replica's micro-batches (empty: all_forward_all_backward); the
/// stages' lists must agree on the order of forwards and of backwards, as every pipeline
/// schedule does. Throws wlb::input_error when the batch does not fit the groups (replicas !=
/// dp.size(), a shard with another CP degree, chunks that do not tile their documents) or the
/// order is not a forward then a backward of every micro-batch.
template <typename T>
[[nodiscard]] step_gradients<T>
compute_step_gradients(const decoder_config& config, const decoder_params<T>& local,
                       const global_batch& batch, const batch_shards& shards,
                       const parallel_groups& groups, const std::vector<stage_op>& order = {});

/// Checks that the CP ranks' chunks of `shard` tile every document of `mb` exactly once and name
/// no other document. Throws wlb::input_error naming `where`, the document and the gap/overlap.
void validate_shard(const micro_batch& mb, const sharded_micro_batch& shard, int cp,
                    std::string_view where);

/// The unsharded form of a batch: one CP rank with one chunk per whole document.
[[nodiscard]] sharded_micro_batch whole_documents(const micro_batch& mb);

} // namespace wlb::runtime
