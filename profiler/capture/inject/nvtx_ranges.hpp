// The job's own NVTX ranges, as the injection library sees them (NVTX injection: every
// nvtxRangePush/Pop, nvtxRangeStart/End of the process, any domain), turned into what the
// analysis needs: steps, micro-batches and passes.
//
// Names (range_rules). Only ranges whose name says one of these is kept; the rest (PyTorch's
// emit_nvtx op ranges, Megatron's per-module ranges) only move the per-thread stack:
//   step         the user's pattern when given (ECMAScript regex, searched in the name; its
//                first capture group, when it holds digits, is the step id); else the whole
//                name, case-insensitive, is one of "ProfilerStep#N", "step", "step N",
//                "train_step", "training_step", "train step", "iteration", "iteration N",
//                "iter N" (separators ' ', '#', '_', '-', ':', '=' before N)
//   micro-batch  "microbatch N", "micro-batch N", "micro_batch N", "micro batch N", "mb N"
//   forward      the last part of the name (after '.', '/', ':') is "forward", "fwd",
//                "forward-compute", "forward_step", "forward_pass" (Megatron's timers and
//                nvtx_range_push suffixes, PyTorch's record_function names)
//   backward     likewise "backward", "bwd", "backward-compute", "backward_step", ...
//   optimizer    "optimizer", "optimizer_step", "optimizer-step", or a name starting with
//                "optimizer." (torch.optim's "Optimizer.step#AdamW.step")
//
// Contexts (profiler/capture/activity.hpp): each kept push-range opens a context, the innermost
// values of the kept ranges open on that thread; the library pushes its id to CUPTI as an external
// correlation, so every kernel launched inside is linked to it. Some values are only known once
// the steps are (resolve): a context outside every step range takes the step its range started
// in (steps from cudaProfilerStart/Stop or the NCCL period); a forward or backward pass outside
// every micro-batch range is micro-batch k when it is the k-th of its kind in its step (as
// Megatron's timers count them).
//
// Thread-safe (one mutex; a push or pop costs a lookup and, for kept names, a few comparisons).
// Host code, no CUDA.
#pragma once

#include "profiler/capture/activity.hpp"

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace wlb::profiler {

enum class range_role : std::uint8_t { none, step, micro_batch, forward, backward, optimizer };
[[nodiscard]] std::string_view range_role_name(range_role r) noexcept;

struct range_meaning {
    range_role role = range_role::none;
    std::int64_t number = -1; ///< the id in the name ("step 12", "microbatch 3"); -1: none
};

class range_rules {
public:
    /// `step_pattern` empty: the built-in step names. Throws std::regex_error when it is not a
    /// valid ECMAScript regex.
    explicit range_rules(const std::string& step_pattern = {});
    [[nodiscard]] range_meaning classify(std::string_view name) const;
    [[nodiscard]] const std::string& step_pattern() const noexcept { return m_pattern; }

private:
    std::string m_pattern;
    std::optional<std::regex> m_step;
};

struct nvtx_stats {
    std::uint64_t ranges = 0;         ///< pushes and starts seen
    std::uint64_t kept = 0;           ///< of them, ranges with a meaning
    std::uint64_t unmatched_pops = 0; ///< pops or ends with no open range
};

/// A step as a span of time: [start_ns, end_ns), its id.
struct step_span {
    std::int64_t step = 0;
    std::int64_t start_ns = 0;
    std::int64_t end_ns = 0;
    friend bool operator==(const step_span&, const step_span&) = default;
};

class nvtx_tracker {
public:
    explicit nvtx_tracker(range_rules rules);

    /// Thread `thread` pushed range `name`: the id of the context it opens (to push to the
    /// capture backend), 0 when the range means nothing to the analysis.
    std::uint64_t push(std::uint64_t thread, std::string_view name, std::int64_t now_ns);
    /// Thread `thread` popped its innermost range: the context id push() returned for it (0:
    /// none, or no range was open).
    std::uint64_t pop(std::uint64_t thread, std::int64_t now_ns);
    /// Start/end ranges (nvtxRangeStart/End, any thread): steps only (they do not nest, so no
    /// kernel is linked to them; kernels take their step by time).
    void start(std::uint64_t range_id, std::string_view name, std::int64_t now_ns);
    void end(std::uint64_t range_id, std::int64_t now_ns);

    /// Step ranges begun / ended so far (the live step marker of capture windows).
    [[nodiscard]] std::int64_t steps_begun() const noexcept { return m_steps_begun.load(); }
    [[nodiscard]] std::int64_t steps_ended() const noexcept { return m_steps_ended.load(); }
    /// When the n-th step range (counting from 1) ended; nullopt before.
    [[nodiscard]] std::optional<std::int64_t> step_end_time(std::int64_t n) const;
    /// When the n-th step range began; nullopt before.
    [[nodiscard]] std::optional<std::int64_t> step_start_time(std::int64_t n) const;

    /// Forgets finished ranges that ended before `t_ns` (nothing captured needs them).
    void discard_before(std::int64_t t_ns);

    /// The steps the step ranges define, in start order (finished ranges only).
    [[nodiscard]] std::vector<step_span> step_spans() const;

    /// The finished ranges and every context, resolved: a context outside every step range
    /// takes `step_at(start_ns)` (-1: none) of its range, then passes are numbered as
    /// micro-batches within their step. Ranges still open are left out; their contexts are in.
    [[nodiscard]] capture_batch
    resolve(const std::function<std::int64_t(std::int64_t)>& step_at) const;

    [[nodiscard]] nvtx_stats stats() const;
    [[nodiscard]] const range_rules& rules() const noexcept { return m_rules; }

private:
    struct context_info {
        std::uint64_t parent = 0; ///< 0: none
        range_meaning meaning;
        std::int64_t step = -1; ///< own step id (role step), resolved later otherwise
        std::int64_t start_ns = 0;
    };
    struct frame {
        std::uint64_t context = 0; ///< 0: a range without meaning
        std::int64_t start_ns = 0;
        std::string name;
    };
    std::uint64_t open_context(std::uint64_t parent, const range_meaning& m, std::int64_t now_ns);
    void finish(std::uint64_t context, std::string name, std::int64_t start_ns,
                std::int64_t end_ns);
    [[nodiscard]] std::uint64_t current(const std::vector<frame>& stack) const;

    range_rules m_rules;
    mutable std::mutex m_mutex;
    std::unordered_map<std::uint64_t, std::vector<frame>> m_stacks; // per thread
    std::unordered_map<std::uint64_t, frame> m_started;             // start/end ranges by id
    std::vector<context_info> m_contexts;                           // id - 1
    std::vector<range_record> m_finished;
    std::vector<std::int64_t> m_step_starts, m_step_ends; // of step ranges, in order
    std::int64_t m_step_counter = 0;
    nvtx_stats m_stats;
    std::atomic<std::int64_t> m_steps_begun{0};
    std::atomic<std::int64_t> m_steps_ended{0};
};

} // namespace wlb::profiler
