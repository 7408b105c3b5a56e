// A packer the training job feeds (issue 21): the dataloader pushes documents (id, tokens) as
// its sampler yields them and takes packed steps out once enough have arrived, instead of the
// packer pulling from a document_stream. It follows a dataloader that shuffles per epoch or
// streams, where a plan file made ahead of time cannot.
//
// Same steps as the offline run. Fed documents d0, d1, ... (in any number of feeds) and closed,
// it emits exactly the steps pack_stream emits over a stream of the same documents in the same
// order (tests/unit/test_online_packer.cpp), because a step is packed only once the documents
// fed decide it:
//
//   next() runs packer::pack with a pull that hands out the documents fed and not yet drawn,
//   stamped with the step. If the pull runs dry before the step is complete and close() has
//   not been called, it throws: the packer keeps the documents it drew for the step (packer.hpp,
//   "Resumable intake") and next() returns nullopt: feed more, and the next call continues the
//   step where it stopped. After close(), a dry pull is the stream's end, and the packer drains
//   what it holds. A call that cannot complete the step (fewer tokens fed than
//   packer::min_draw_tokens) does not even start, so no document is drawn twice whatever the
//   sizes of the feeds.
//
// Checkpoints. save_state() holds the step counter, the documents fed and not yet drawn, and the
// packer's own state (tuner/packing/packer_state.hpp); a packer of the same configuration given
// it by load_state() continues with exactly the steps this one would have emitted. A step in
// progress is saved as it stood before its intake began (a copy of the packer taken then), with
// the documents it drew counted as fed: the restored packer draws them again for the same step.
#pragma once

#include "runtime/parallel/batch.hpp"
#include "tuner/packing/packer.hpp"
#include "tuner/packing/packer_state.hpp"

#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace wlb::tuner {

class cost_model;

inline constexpr std::string_view online_packer_schema = "wlbtune.packer_state/1";

/// Everything an online_packer holds.
struct online_packer_state {
    packing_config config;
    std::int64_t next_step = 0; ///< the step next() packs
    bool closed = false;
    /// Fed and not yet drawn, in feeding order; drawn_step is unset (0) until drawn.
    std::vector<runtime::document> fed;
    packer_state packer;
};

/// {"schema": "wlbtune.packer_state/1", "packing": {...} (docs/formats.md), "next_step": N,
/// "closed": bool, "fed": [[id, tokens], ...], "packer": {...} (packer_state)}.
nlohmann::json to_json(const online_packer_state& s);
/// The inverse; throws wlb::input_error "WHERE: $.path: what" on another schema or a malformed
/// field.
online_packer_state online_packer_state_from_json(const nlohmann::json& j, std::string_view where);

class online_packer {
public:
    /// The packer of `config` (validated: wlb::input_error naming the field). `costs` predicts
    /// the work the balancing policies even out and must outlive the packer.
    online_packer(const packing_config& config, const cost_model& costs);

    /// Appends documents in the dataloader's order: ids[i] has tokens[i] tokens. Throws
    /// wlb::input_error, feeding nothing, when the spans differ in size, after close(), or when a
    /// document has a negative id, no tokens, or more tokens than the context (the message a
    /// packer gives: the dataloader must truncate or split it first).
    void feed(std::span<const std::int64_t> ids, std::span<const std::int64_t> tokens);
    /// No more documents: the next steps drain what is fed and waiting. Idempotent.
    void close() noexcept { m_closed = true; }

    /// The next step when the documents fed decide it, else nullopt: before close(), feed more;
    /// after it, the run is over (finished()).
    std::optional<runtime::global_batch> next();

    [[nodiscard]] bool closed() const noexcept { return m_closed; }
    /// Closed, and every step was emitted.
    [[nodiscard]] bool finished() const noexcept { return m_finished; }
    /// The step next() packs.
    [[nodiscard]] std::int64_t next_step() const noexcept { return m_step; }
    /// Documents fed and not yet drawn by the packer.
    [[nodiscard]] std::int64_t fed_documents() const noexcept {
        return static_cast<std::int64_t>(m_fed.size() - m_head);
    }
    /// Documents drawn and not yet in an emitted step (packer::waiting; those drawn for a step
    /// in progress included).
    [[nodiscard]] std::vector<runtime::document> waiting() const { return m_packer->waiting(); }
    [[nodiscard]] const packing_config& config() const noexcept { return m_packer->config(); }

    [[nodiscard]] online_packer_state save_state() const;
    /// Replaces everything this packer holds with `s`. Throws wlb::input_error, changing
    /// nothing, when `s` was saved under another packing configuration or does not fit it.
    void load_state(const online_packer_state& s);

private:
    std::unique_ptr<packer> m_packer;
    std::vector<runtime::document> m_fed; // [m_head, end) not yet drawn
    std::size_t m_head = 0;
    std::int64_t m_fed_tokens = 0; // of [m_head, end)
    // With a step in progress: the packer as it was before the step's intake began, and where
    // the intake started drawing in m_fed (what save_state() reports).
    std::unique_ptr<packer> m_before_step;
    std::size_t m_step_head = 0;
    std::int64_t m_step = 0;
    bool m_closed = false;
    bool m_finished = false;
};

} // namespace wlb::tuner
