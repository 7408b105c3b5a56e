#include "profiler/capture/inject/nvtx_ranges.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <map>

namespace wlb::profiler {
namespace {

/// Longest name the built-in rules look at: every built-in name is shorter, and op ranges
/// (PyTorch's "aten::addmm, seq = 12, sizes = ...") are skipped without copying them.
constexpr std::size_t longest_name = 64;

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out)
        if (c >= 'A' && c <= 'Z')
            c = static_cast<char>(c - 'A' + 'a');
    return out;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

bool separator(char c) {
    return c == ' ' || c == '#' || c == '_' || c == '-' || c == ':' || c == '=';
}

/// Splits "step 12" into ("step", 12); a name without a trailing number keeps -1.
std::pair<std::string_view, std::int64_t> strip_number(std::string_view s) {
    std::size_t digits = s.size();
    while (digits > 0 && s[digits - 1] >= '0' && s[digits - 1] <= '9')
        --digits;
    if (digits == s.size() || digits == 0)
        return {s, -1};
    std::int64_t n = -1;
    const auto [end, ec] = std::from_chars(s.data() + digits, s.data() + s.size(), n);
    if (ec != std::errc())
        return {s, -1};
    std::size_t base = digits;
    while (base > 0 && separator(s[base - 1]))
        --base;
    return {s.substr(0, base), n};
}

template <std::size_t N>
bool one_of(std::string_view s, const std::array<std::string_view, N>& words) {
    return std::find(words.begin(), words.end(), s) != words.end();
}

constexpr std::array<std::string_view, 13> step_words = {
    "profilerstep",   "step",          "train_step",      "train-step",
    "train step",     "training_step", "training-step",   "training step",
    "iteration",      "iter",          "train_iteration", "training_iteration",
    "train iteration"};
constexpr std::array<std::string_view, 6> micro_batch_words = {
    "microbatch", "micro-batch", "micro_batch", "micro batch", "mb", "micro-batch-id"};
constexpr std::array<std::string_view, 10> forward_words = {
    "forward",      "fwd",          "forward-compute", "forward_compute", "forward_step",
    "forward-step", "forward_pass", "forward-pass",    "forward pass",    "forward_step_func"};
constexpr std::array<std::string_view, 9> backward_words = {
    "backward",      "bwd",           "backward-compute", "backward_compute", "backward_step",
    "backward-step", "backward_pass", "backward-pass",    "backward pass"};
constexpr std::array<std::string_view, 5> optimizer_words = {
    "optimizer", "optimizer_step", "optimizer-step", "optimizer step", "opt_step"};

/// The part after the last '.', '/' or ':' (Megatron prefixes a range with its call path).
std::string_view last_part(std::string_view s) {
    const auto cut = s.find_last_of("./:");
    return trim(cut == std::string_view::npos ? s : s.substr(cut + 1));
}

} // namespace

std::string_view range_role_name(range_role r) noexcept {
    switch (r) {
    case range_role::none:
        return "none";
    case range_role::step:
        return "step";
    case range_role::micro_batch:
        return "micro-batch";
    case range_role::forward:
        return "forward";
    case range_role::backward:
        return "backward";
    case range_role::optimizer:
        break;
    }
    return "optimizer";
}

range_rules::range_rules(const std::string& step_pattern) : m_pattern(step_pattern) {
    if (!step_pattern.empty())
        m_step.emplace(step_pattern, std::regex::ECMAScript | std::regex::optimize);
}

range_meaning range_rules::classify(std::string_view name) const {
    if (m_step) {
        std::match_results<std::string_view::const_iterator> m;
        if (std::regex_search(name.begin(), name.end(), m, *m_step)) {
            range_meaning r{range_role::step, -1};
            if (m.size() > 1 && m[1].matched) {
                const std::string_view g(&*m[1].first, static_cast<std::size_t>(m[1].length()));
                std::int64_t n = -1;
                if (const auto [end, ec] = std::from_chars(g.data(), g.data() + g.size(), n);
                    ec == std::errc() && end == g.data() + g.size())
                    r.number = n;
            }
            if (r.number < 0)
                r.number = strip_number(trim(name)).second;
            return r;
        }
    }
    if (name.size() > longest_name)
        return {};
    const std::string l = lower(trim(name));
    const auto [base, number] = strip_number(l);
    if (!m_step && one_of(base, step_words))
        return {range_role::step, number};
    if (one_of(base, micro_batch_words))
        return {range_role::micro_batch, number};
    if (l.starts_with("optimizer."))
        return {range_role::optimizer, -1};
    const auto part = strip_number(last_part(l)).first;
    if (one_of(part, forward_words))
        return {range_role::forward, -1};
    if (one_of(part, backward_words))
        return {range_role::backward, -1};
    if (one_of(part, optimizer_words))
        return {range_role::optimizer, -1};
    return {};
}

nvtx_tracker::nvtx_tracker(range_rules rules) : m_rules(std::move(rules)) {}

std::uint64_t nvtx_tracker::current(const std::vector<frame>& stack) const {
    for (auto it = stack.rbegin(); it != stack.rend(); ++it)
        if (it->context != 0)
            return it->context;
    return 0;
}

std::uint64_t nvtx_tracker::open_context(std::uint64_t parent, const range_meaning& m,
                                         std::int64_t now_ns) {
    context_info c;
    c.parent = parent;
    c.meaning = m;
    c.start_ns = now_ns;
    if (m.role == range_role::step) {
        c.step = m.number >= 0 ? m.number : m_step_counter;
        ++m_step_counter;
        m_step_starts.push_back(now_ns);
        m_steps_begun.store(static_cast<std::int64_t>(m_step_starts.size()));
    }
    m_contexts.push_back(c);
    return static_cast<std::uint64_t>(m_contexts.size());
}

void nvtx_tracker::finish(std::uint64_t context, std::string name, std::int64_t start_ns,
                          std::int64_t end_ns) {
    const auto& c = m_contexts[static_cast<std::size_t>(context - 1)];
    range_record r;
    r.level = c.meaning.role == range_role::step          ? range_level::step
              : c.meaning.role == range_role::micro_batch ? range_level::micro_batch
                                                          : range_level::phase;
    r.name = std::move(name);
    r.start_ns = start_ns;
    r.end_ns = end_ns;
    r.context_id = context;
    m_finished.push_back(std::move(r));
    if (c.meaning.role == range_role::step) {
        m_step_ends.push_back(end_ns);
        m_steps_ended.store(static_cast<std::int64_t>(m_step_ends.size()));
    }
}

std::uint64_t nvtx_tracker::push(std::uint64_t thread, std::string_view name, std::int64_t now_ns) {
    const auto meaning = m_rules.classify(name);
    std::lock_guard lock(m_mutex);
    ++m_stats.ranges;
    auto& stack = m_stacks[thread];
    frame f;
    f.start_ns = now_ns;
    if (meaning.role != range_role::none) {
        ++m_stats.kept;
        f.context = open_context(current(stack), meaning, now_ns);
        f.name = std::string(name);
    }
    stack.push_back(std::move(f));
    return stack.back().context;
}

std::uint64_t nvtx_tracker::pop(std::uint64_t thread, std::int64_t now_ns) {
    std::lock_guard lock(m_mutex);
    auto it = m_stacks.find(thread);
    if (it == m_stacks.end() || it->second.empty()) {
        ++m_stats.unmatched_pops;
        return 0;
    }
    frame f = std::move(it->second.back());
    it->second.pop_back();
    if (f.context != 0)
        finish(f.context, std::move(f.name), f.start_ns, now_ns);
    return f.context;
}

void nvtx_tracker::start(std::uint64_t range_id, std::string_view name, std::int64_t now_ns) {
    const auto meaning = m_rules.classify(name);
    std::lock_guard lock(m_mutex);
    ++m_stats.ranges;
    if (meaning.role != range_role::step)
        return;
    ++m_stats.kept;
    frame f;
    f.start_ns = now_ns;
    f.context = open_context(0, meaning, now_ns);
    f.name = std::string(name);
    m_started[range_id] = std::move(f);
}

void nvtx_tracker::end(std::uint64_t range_id, std::int64_t now_ns) {
    std::lock_guard lock(m_mutex);
    auto it = m_started.find(range_id);
    if (it == m_started.end())
        return; // a range without meaning (start() kept nothing), or never started
    frame f = std::move(it->second);
    m_started.erase(it);
    finish(f.context, std::move(f.name), f.start_ns, now_ns);
}

std::optional<std::int64_t> nvtx_tracker::step_end_time(std::int64_t n) const {
    std::lock_guard lock(m_mutex);
    if (n < 1 || n > static_cast<std::int64_t>(m_step_ends.size()))
        return std::nullopt;
    return m_step_ends[static_cast<std::size_t>(n - 1)];
}

std::optional<std::int64_t> nvtx_tracker::step_start_time(std::int64_t n) const {
    std::lock_guard lock(m_mutex);
    if (n < 1 || n > static_cast<std::int64_t>(m_step_starts.size()))
        return std::nullopt;
    return m_step_starts[static_cast<std::size_t>(n - 1)];
}

void nvtx_tracker::discard_before(std::int64_t t_ns) {
    std::lock_guard lock(m_mutex);
    std::erase_if(m_finished, [&](const range_record& r) {
        return r.end_ns < t_ns && r.level != range_level::step;
    });
}

std::vector<step_span> nvtx_tracker::step_spans() const {
    std::lock_guard lock(m_mutex);
    std::vector<step_span> out;
    for (const auto& r : m_finished)
        if (r.level == range_level::step)
            out.push_back({m_contexts[static_cast<std::size_t>(r.context_id - 1)].step, r.start_ns,
                           r.end_ns});
    std::sort(out.begin(), out.end(),
              [](const step_span& a, const step_span& b) { return a.start_ns < b.start_ns; });
    return out;
}

capture_batch
nvtx_tracker::resolve(const std::function<std::int64_t(std::int64_t)>& step_at) const {
    std::lock_guard lock(m_mutex);
    capture_batch out;
    out.ranges = m_finished;
    const std::size_t n = m_contexts.size();
    std::vector<range_context> ctx(n);
    // Parents come before their children (ids grow), so one pass in id order sees each parent
    // resolved before its children. First the steps and the passes.
    // A pass or micro-batch range that takes its micro-batch from its order in the step.
    std::vector<bool> counted(n, false);
    std::vector<bool> under_micro_batch(n, false); // inside a micro-batch range
    for (std::size_t i = 0; i < n; ++i) {
        const auto& c = m_contexts[i];
        if (c.parent != 0) {
            const auto p = static_cast<std::size_t>(c.parent - 1);
            under_micro_batch[i] =
                under_micro_batch[p] || m_contexts[p].meaning.role == range_role::micro_batch;
        }
        range_context& x = ctx[i];
        const range_context* parent =
            c.parent != 0 ? &ctx[static_cast<std::size_t>(c.parent - 1)] : nullptr;
        if (parent != nullptr)
            x = *parent;
        const bool in_pass = parent != nullptr && (parent->ph == runtime::phase::fwd ||
                                                   parent->ph == runtime::phase::bwd);
        switch (c.meaning.role) {
        case range_role::step:
            x = range_context{};
            x.step = c.step;
            break;
        case range_role::micro_batch:
            x.micro_batch = static_cast<int>(c.meaning.number);
            x.ph = runtime::phase::none;
            counted[i] = c.meaning.number < 0;
            break;
        case range_role::forward:
        case range_role::backward:
            // A pass inside a pass is part of it (Megatron's activation recomputation runs a
            // forward inside the backward): it changes neither the pass nor the micro-batch.
            if (in_pass)
                break;
            x.ph =
                c.meaning.role == range_role::forward ? runtime::phase::fwd : runtime::phase::bwd;
            counted[i] = !under_micro_batch[i];
            break;
        case range_role::optimizer:
            x.ph = runtime::phase::optimizer;
            x.micro_batch = -1;
            break;
        case range_role::none:
            break;
        }
        if (x.step < 0)
            x.step = step_at ? step_at(c.start_ns) : -1;
    }
    // The k-th counted range of its kind in its step is micro-batch k.
    std::map<std::pair<std::int64_t, int>, std::vector<std::size_t>> order;
    for (std::size_t i = 0; i < n; ++i)
        if (counted[i])
            order[{ctx[i].step, static_cast<int>(m_contexts[i].meaning.role)}].push_back(i);
    for (auto& [key, list] : order) {
        std::sort(list.begin(), list.end(), [&](std::size_t a, std::size_t b) {
            return m_contexts[a].start_ns < m_contexts[b].start_ns;
        });
        for (std::size_t k = 0; k < list.size(); ++k)
            ctx[list[k]].micro_batch = static_cast<int>(k);
    }
    // Children of a counted pass inherit its number (they were copied before it was known).
    for (std::size_t i = 0; i < n; ++i) {
        const auto& c = m_contexts[i];
        if (counted[i] || c.parent == 0)
            continue;
        const auto& parent = ctx[static_cast<std::size_t>(c.parent - 1)];
        const bool own = c.meaning.role == range_role::micro_batch ||
                         c.meaning.role == range_role::step ||
                         c.meaning.role == range_role::optimizer;
        if (!own && ctx[i].micro_batch < 0)
            ctx[i].micro_batch = parent.micro_batch;
    }
    out.contexts.reserve(n);
    for (std::size_t i = 0; i < n; ++i)
        out.contexts.emplace_back(static_cast<std::uint64_t>(i + 1), ctx[i]);
    return out;
}

nvtx_stats nvtx_tracker::stats() const {
    std::lock_guard lock(m_mutex);
    return m_stats;
}

} // namespace wlb::profiler
