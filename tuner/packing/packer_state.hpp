// What a packer holds between two steps (tuner/packing/packer.hpp): the documents it has drawn
// but not yet emitted, in the structures that decide where they go next. A packer restored from
// it emits exactly the steps the packer it was saved from would have emitted, so a training job
// can checkpoint its dataloader mid-run (issue 21) and resume with the same queues.
//
//   carried  varlen, wlb, ffd, fixed-greedy: documents left over from the last step (or window),
//            placed first at the next one (their order does not matter: they are sorted)
//   queues   wlb: one per threshold, oldest first (the order is the release order)
//   ready    fixed-greedy: the current window's packed steps not yet emitted, in order
//   pending  plain: the rest of a document cut at the end of the last step
//   ended    the stream has ended: the packer drains what it holds
//
// Documents keep their drawn_step, so delays stay measurable across a restore. The predicted
// work the balancing policies attach to a document is not stored: it is a function of the
// document's length (cost_model::document_fwd_seconds) and recomputed on restore.
#pragma once

#include "runtime/parallel/batch.hpp"

#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string_view>
#include <vector>

namespace wlb::tuner {

struct packer_state {
    std::vector<runtime::document> carried;
    std::vector<std::vector<runtime::document>> queues;
    std::vector<runtime::global_batch> ready;
    std::optional<runtime::document> pending;
    bool ended = false;
};

/// {"carried": [[id, tokens, drawn_step], ...], "queues": [[...], ...], "ready": [{"step": N,
/// "replicas": [{"micro_batches": [{"docs": [...]}]}]}], "pending": [id, tokens, drawn_step] |
/// null, "ended": bool}: documents as a plan writes them (docs/formats.md).
nlohmann::json to_json(const packer_state& s);
/// The inverse; throws wlb::input_error "WHERE: $.path: what" on a malformed object (the shape
/// only: check_packer_state in tuner/packing/packer.hpp checks it against a configuration).
packer_state packer_state_from_json(const nlohmann::json& j, std::string_view where);

} // namespace wlb::tuner
