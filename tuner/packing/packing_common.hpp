// Pieces the packing policies share (tuner/packer_*.cpp): documents with their predicted work,
// the step under construction, and the intake rule of tuner/packing/packer.hpp.
#pragma once

#include "runtime/parallel/batch.hpp"
#include "tuner/packing/packer.hpp"

#include <cstdint>
#include <vector>

namespace wlb::tuner {

class cost_model;

/// A document with the work the balancing policies compare (cost_model::document_fwd_seconds).
struct weighed_doc {
    runtime::document doc;
    double work = 0.0;
};

/// Throws wlb::input_error when `d` is longer than the context (the stream should have truncated
/// or split it) or empty.
void check_document(const runtime::document& d, std::int64_t context_tokens);

/// A step's intake in progress (packer.hpp, "Resumable intake"): the tokens counted toward the
/// step's budget and the new documents drawn for it so far.
struct intake_state {
    bool active = false;
    std::int64_t have_tokens = 0;
    std::vector<weighed_doc> fresh;
};

/// Draws documents stamped `step` from `pull` until `have_tokens` (what the caller holds for
/// this step, updated as each document is admitted) reaches `target_tokens`, or the stream ends.
/// `admit(doc)` takes each drawn document and returns how many tokens it adds toward the target
/// (its length, or 0 for a wlb outlier parked in a queue, or a whole queue's release when it
/// becomes ready). Returns false once the stream has ended. If `pull` throws, every document
/// drawn before was admitted and counted, so a later call continues where this one stopped.
template <class Admit>
bool draw_until(const document_pull& pull, std::int64_t step, std::int64_t context_tokens,
                std::int64_t& have_tokens, std::int64_t target_tokens, Admit&& admit) {
    while (have_tokens < target_tokens) {
        auto d = pull(step);
        if (!d)
            return false;
        check_document(*d, context_tokens);
        have_tokens += admit(*d);
    }
    return true;
}

/// The micro-batches of one step under construction, with their tokens and predicted work.
class step_builder {
public:
    /// `micro_batches` across all replicas; `limit_tokens` per micro-batch; `budget_tokens` for
    /// the whole step.
    step_builder(int micro_batches, std::int64_t limit_tokens, std::int64_t budget_tokens);

    /// Whether `tokens` more fit micro-batch `i` and the step's budget.
    [[nodiscard]] bool fits(int i, std::int64_t tokens) const noexcept {
        return m_tokens[static_cast<std::size_t>(i)] + tokens <= m_limit &&
               m_total + tokens <= m_budget;
    }
    void place(int i, const weighed_doc& d);
    /// The micro-batch of least predicted work (lowest index on ties).
    [[nodiscard]] int least_work() const noexcept;
    /// The micro-batch of fewest tokens (lowest index on ties).
    [[nodiscard]] int least_tokens() const noexcept;
    [[nodiscard]] int size() const noexcept { return static_cast<int>(m_mbs.size()); }
    [[nodiscard]] std::int64_t total_tokens() const noexcept { return m_total; }
    [[nodiscard]] std::int64_t budget_left() const noexcept { return m_budget - m_total; }
    [[nodiscard]] double work(int i) const noexcept { return m_work[static_cast<std::size_t>(i)]; }

    /// Moves the micro-batches into a global batch: replica r gets micro-batches
    /// [r * per_replica, (r + 1) * per_replica).
    runtime::global_batch finish(std::int64_t step, int replicas);

private:
    std::vector<runtime::micro_batch> m_mbs;
    std::vector<std::int64_t> m_tokens;
    std::vector<double> m_work;
    std::int64_t m_limit;
    std::int64_t m_budget;
    std::int64_t m_total = 0;
};

/// Documents of `pool`, longest first (ties: lower id first), so the policies are deterministic.
void sort_longest_first(std::vector<weighed_doc>& pool);
/// Carried-over documents in the order they are placed: oldest first (drawn_step ascending),
/// then longest first, then lower id. The oldest carried document is always placed first into an
/// empty step, so no document waits forever.
void sort_carried(std::vector<weighed_doc>& carried);

/// Algorithm 1's placement rule, in the order given: each document goes to the micro-batch of
/// least predicted work if it fits there (S_max and the step budget), else to the micro-batch of
/// fewest tokens if it fits there, else it is appended to `left_over`.
void place_least_work(step_builder& b, const std::vector<weighed_doc>& docs,
                      std::vector<weighed_doc>& left_over);

std::int64_t tokens_of(const std::vector<weighed_doc>& docs) noexcept;

std::vector<runtime::document> documents_of(const std::vector<weighed_doc>& pool);
/// The inverse of documents_of: each document with its predicted work
/// (cost_model::document_fwd_seconds), or 0 when `costs` is null (policies that do not weigh).
std::vector<weighed_doc> weigh(const std::vector<runtime::document>& docs, const cost_model* costs);

/// The policies that carry over to the next step what did not fit (varlen, ffd, fixed-greedy):
/// the carried documents, the intake in progress and the stream's end, and what packer asks of
/// them. A policy that holds more between steps (fixed-greedy's ready steps) extends the
/// overrides.
class carry_over_packer : public packer {
public:
    /// The carried documents and those of the intake in progress.
    [[nodiscard]] std::vector<runtime::document> waiting() const override;
    [[nodiscard]] packer_state save_state() const override;
    void load_state(const packer_state& s) override;
    /// The intake's target less what it holds (the carried documents count toward it).
    [[nodiscard]] std::int64_t min_draw_tokens() const override;

protected:
    /// `costs` weighs each document (cost_model::document_fwd_seconds; null: work 0); an intake
    /// draws until it holds `intake_tokens` (a step's budget, or a window's).
    carry_over_packer(const packing_config& config, const cost_model* costs,
                      std::int64_t intake_tokens);
    /// Runs (or resumes) the intake: from the carried documents' tokens, draws documents stamped
    /// `step` until the target or the stream's end, and returns the new ones, weighed; the
    /// intake is then over. A pull that throws leaves the intake to resume.
    std::vector<weighed_doc> draw_fresh(std::int64_t step, const document_pull& pull);

    const cost_model* m_costs;
    std::int64_t m_intake_tokens;
    std::vector<weighed_doc> m_carried;
    intake_state m_intake;
    bool m_ended = false;
};

} // namespace wlb::tuner
