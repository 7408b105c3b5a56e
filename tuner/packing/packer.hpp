// Packing policies (design.md section 2, "packer"): each training step, a packer turns the
// documents the dataloader hands it into a global batch (DP replicas x micro-batches x
// documents). One interface, one file per policy:
//
//   plain         tuner/packing/packer_plain.cpp         Megatron-style fixed-length sequences in
//                                                dataloader order, documents cut at the
//                                                boundaries (WLB-LLM's Plain-4D)
//   plain-whole   tuner/packing/packer_plain_whole.cpp   fixed-length sequences in dataloader
//                                                order, every document whole (the original
//                                                packing behind the paper's 1.44 imbalance)
//   fixed-greedy  tuner/packing/packer_fixed_greedy.cpp  fixed-length sequences, documents assigned
//   to
//                                                balance attention work over a window of W steps
//   varlen        tuner/packing/packer_varlen.cpp        WLB-LLM Algorithm 1 without outlier queues
//   wlb           tuner/packing/packer_wlb.cpp           WLB-LLM Algorithm 1 with outlier-delay
//   queues ffd           tuner/packing/packer_ffd.cpp           first-fit-decreasing into
//   fixed-length bins
//                                                (NeMo's sequence packing)
//
// Common contract (every policy; tests/unit/test_packers.cpp checks it over many seeds):
// - Intake. At step s a packer draws documents from the stream (stamping drawn_step = s) until
//   the documents it may place this step (carried over + newly drawn, outliers parked in wlb's
//   queues excluded) hold at least the step's token budget, or the stream ends. fixed-greedy
//   draws a whole window's budget (W steps) at the window's first step. Intake therefore follows
//   what the packer manages to place, and what waits stays bounded.
// - Budget. A step never holds more than the global batch tokens dp x micro_batches x context;
//   a micro-batch never holds more than its limit: the context for plain, fixed-greedy and ffd,
//   S_max for varlen and wlb.
// - Nothing is dropped or duplicated. Every drawn token is in exactly one emitted step or in
//   waiting(). A document goes whole into one micro-batch, except in plain, which cuts a
//   document at a sequence boundary and continues it (same id, the remaining tokens) at the
//   start of the next sequence, as Megatron's GPTDataset does; a piece continued into the next
//   step counts as drawn in that step, so plain's delay is zero by construction.
// - Delay of a document = the step it is packed in - drawn_step, in iterations; per-token
//   delay weighs it by the document's tokens (tuner/packing/packing_measures.hpp).
// - Deterministic: the same documents give the same plan (ties go to the lowest index; the
//   only randomness is the stream's shuffle seed).
// - Documents longer than the context are the stream's business (truncate or split); a packer
//   given one throws wlb::input_error.
// - Resumable intake. If the pull throws, pack() lets the exception through and keeps the
//   documents it drew for the step so far (each is admitted before the next pull); called again
//   with the same step, it continues the step's intake where it stopped and emits exactly the
//   step an uninterrupted call would. The online packer (tuner/packing/online_packer.hpp) packs
//   from the documents fed so far this way. save_state() is for between steps only.
#pragma once

#include "runtime/parallel/batch.hpp"
#include "tuner/packing/packer_state.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wlb::tuner {

class cost_model;

enum class packing_policy { plain, fixed_greedy, varlen, wlb, ffd, plain_whole };

/// "plain", "fixed-greedy", "varlen", "wlb", "ffd", "plain-whole".
std::string_view to_string(packing_policy p) noexcept;
/// Parses a policy name; throws wlb::input_error listing the known names.
packing_policy parse_packing_policy(std::string_view text);
std::vector<std::string> packing_policy_names();

struct packing_config {
    packing_policy policy = packing_policy::wlb;
    std::int64_t context_tokens = 131072; ///< fixed sequence length C
    int replicas = 1;                     ///< DP replicas per step (layout dp)
    int micro_batches = 4;                ///< per replica (default: layout pp, as WLB-LLM)
    /// varlen / wlb: most tokens one micro-batch may hold (S_max); 0 means the context.
    /// Must be >= the context. Ignored by the fixed-length policies.
    std::int64_t smax_tokens = 0;
    /// wlb: queue lower bounds L1 < ... < Ln (tokens); a document of length in [Li, Li+1)
    /// waits in queue i (Ln+1 = infinity). Empty = no queues (then wlb behaves as varlen).
    std::vector<std::int64_t> thresholds;
    int window = 1; ///< fixed-greedy: global batches per packing window W
    /// varlen / wlb: the step's token budget when it is not replicas x micro_batches x context,
    /// so that the number of micro-batches can change while the tokens per step stay fixed
    /// (8 micro-batches of 64K on average instead of 4 of 128K); 0 means the product. Must not
    /// exceed step_micro_batches() x S_max. The fixed-length policies always use the product.
    std::int64_t budget_tokens = 0;
    /// wlb: the longest a document may wait, in steps (step packed - step drawn). A queued or
    /// carried document that has waited this long is placed first in the step, spread over the
    /// micro-batches that hold the fewest such documents (then the least work), whether or not
    /// its queue is full. 0: no bound (only the mean delay the queues give). The bound holds
    /// unless the documents due in one step exceed its budget.
    std::int64_t max_delay_steps = 0;

    /// Micro-batches per step (all replicas): the N of Algorithm 1.
    [[nodiscard]] int step_micro_batches() const noexcept { return replicas * micro_batches; }
    /// Global batch tokens: budget_tokens when set, else replicas x micro_batches x context.
    [[nodiscard]] std::int64_t step_tokens() const noexcept {
        if (budget_tokens > 0)
            return budget_tokens;
        return static_cast<std::int64_t>(step_micro_batches()) * context_tokens;
    }
    /// Most tokens one micro-batch may hold under this policy.
    [[nodiscard]] std::int64_t micro_batch_limit() const noexcept;
};

/// Bounds on what a packing configuration may make a packer allocate, checked by validate()
/// before any packer exists (a window of W steps holds W x replicas x micro_batches bins).
inline constexpr int max_replicas = 1 << 16;             ///< DP replicas per step
inline constexpr int max_micro_batches = 1 << 12;        ///< micro-batches per replica and step
inline constexpr std::int64_t max_window_bins = 1 << 20; ///< window x step micro-batches
inline constexpr int max_queues = 64;                    ///< wlb outlier queues (thresholds)

/// Throws wlb::input_error naming the field when the configuration is inconsistent or exceeds
/// the bounds above.
void validate(const packing_config& c);
/// {"policy", "context_tokens", "replicas", "micro_batches", "micro_batch_limit",
///  "smax_tokens", "thresholds", "window", "step_tokens", "max_delay_steps"} (the fields a policy
///  does not use are omitted; "step_tokens" only when budget_tokens is set, "max_delay_steps"
///  only when a bound is set, so that configs without it read as before).
nlohmann::json to_json(const packing_config& c);
/// The inverse; `where` names the file and JSON path for errors.
packing_config packing_config_from_json(const nlohmann::json& j, std::string_view where);

/// --smax: "1.5x" (a multiple of the context, >= 1) or a token count ("192k"); "" or "0" means
/// the context. Throws wlb::input_error naming --smax.
std::int64_t parse_smax(std::string_view text, std::int64_t context_tokens);
/// --thresholds: "16k,48k" (token counts, increasing). Throws wlb::input_error naming the item.
std::vector<std::int64_t> parse_thresholds(std::string_view text);
/// Default wlb queue thresholds for `queues` queues (1, 2 or 3), as fractions of the context
/// placed from the length quantiles of the WLB-LLM-shaped sample (docs/benchmarks.md): 1 queue
/// C/4 (32K at 128K); 2 queues 3C/16, C/2 (24K, 64K); 3 queues C/8, C/4, C/2 (16K, 32K, 64K).
/// More queues split [C/8, C) evenly in log2. 0 queues: none.
std::vector<std::int64_t> default_thresholds(int queues, std::int64_t context_tokens);
/// Default S_max for varlen and wlb: 1.5 x the context.
[[nodiscard]] constexpr std::int64_t default_smax(std::int64_t context_tokens) noexcept {
    return context_tokens * 3 / 2;
}

/// Where a packer draws documents from: returns the next document of the stream stamped with
/// `drawn_step`, or nullopt at its end (tuner::document_stream::next has this shape).
using document_pull = std::function<std::optional<runtime::document>(std::int64_t drawn_step)>;

class packer {
public:
    virtual ~packer() = default;
    /// Packs step `step`; steps are 0, 1, 2, ... in order. Returns nullopt once the stream has
    /// ended and nothing waits (then no later call returns a step). An emitted step may be
    /// partly or wholly empty only when the stream has ended (draining wlb's queues).
    virtual std::optional<runtime::global_batch> pack(std::int64_t step,
                                                      const document_pull& pull) = 0;
    /// Documents drawn but not yet in an emitted step (carried over, queued, or packed into a
    /// later step of the current window), in no particular order.
    [[nodiscard]] virtual std::vector<runtime::document> waiting() const = 0;
    [[nodiscard]] const packing_config& config() const noexcept { return m_config; }

    /// What the packer holds between steps (tuner/packing/packer_state.hpp): a packer of the
    /// same configuration given it by load_state() emits exactly the steps this one would.
    /// Throws wlb::internal_error while a step's intake is in progress (a pull threw).
    [[nodiscard]] virtual packer_state save_state() const = 0;
    /// Replaces what the packer holds with `s`, dropping an intake in progress. Throws
    /// wlb::input_error (check_packer_state) when `s` does not fit this packer's configuration,
    /// leaving the packer as it was.
    virtual void load_state(const packer_state& s) = 0;
    /// A lower bound on the tokens the next pack() draws before it returns a step, unless the
    /// stream ends first (0: it may draw nothing); with an intake in progress, the tokens it
    /// still draws. A caller holding fewer tokens to hand out
    /// knows the step cannot be packed yet without trying (tuner/packing/online_packer.hpp).
    [[nodiscard]] virtual std::int64_t min_draw_tokens() const = 0;
    /// An independent copy, state included (the cost model is shared): a caller that may have to
    /// undo a pack() runs it on a copy (tuner/packing/online_packer.hpp).
    [[nodiscard]] virtual std::unique_ptr<packer> clone() const = 0;

protected:
    explicit packer(packing_config config) : m_config(std::move(config)) {}
    packing_config m_config;
};

/// Throws wlb::input_error "packer state: what" when `s` cannot be the state of a packer of
/// `config`: a structure its policy does not have (queues of a policy without them, a pending
/// document outside plain and plain-whole, ready steps outside fixed-greedy), another number of
/// queues than thresholds, a queued document outside its queue's length range, a document of no
/// tokens or longer than the context, or a ready step of another shape than replicas x
/// micro-batches.
void check_packer_state(const packer_state& s, const packing_config& config);

/// Builds the packer of config.policy (validated first). The cost model predicts the work the
/// balancing policies equalize (cost_model::document_fwd_seconds); it must outlive the packer.
std::unique_ptr<packer> make_packer(const packing_config& config, const cost_model& costs);

// One factory per policy file.
std::unique_ptr<packer> make_plain_packer(const packing_config& config);
std::unique_ptr<packer> make_fixed_greedy_packer(const packing_config& config,
                                                 const cost_model& costs);
std::unique_ptr<packer> make_varlen_packer(const packing_config& config, const cost_model& costs);
std::unique_ptr<packer> make_wlb_packer(const packing_config& config, const cost_model& costs);
std::unique_ptr<packer> make_ffd_packer(const packing_config& config);
std::unique_ptr<packer> make_plain_whole_packer(const packing_config& config);

} // namespace wlb::tuner
