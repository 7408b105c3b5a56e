#include "tuner/search/tune.hpp"

#include "base/error.hpp"
#include "tuner/cost/cost_model.hpp"
#include "tuner/packing/pack_run.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <fmt/format.h>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

namespace wlb::tuner {
namespace {

using clock_type = std::chrono::steady_clock;

// Thrown from an evaluation's progress callback to abort it at the hard deadline.
struct evaluation_cancelled {};

double token_imbalance_bound(const sharding_spec& s) {
    return s.policy == sharding_policy::hybrid ? std::max(1.0, s.hybrid_max_token_imbalance) : 1.0;
}

memory_estimate candidate_memory(const memory_model& memory, const candidate& c) {
    const auto& p = c.packing;
    return memory.estimate(p.micro_batch_limit(), p.micro_batches, p.step_tokens() / p.replicas,
                           token_imbalance_bound(c.sharding));
}

std::string check_constraints(const candidate_result& r, const tune_constraints& k,
                              const memory_estimate& m) {
    if (r.documents_exhausted)
        return fmt::format("the sample's documents ran out before step {}", r.steps);
    if (r.delay_mean > k.max_mean_delay + 1e-12)
        return fmt::format("mean delay {:.3f} > {:.3f} iterations", r.delay_mean, k.max_mean_delay);
    if (k.max_delay_steps > 0 && r.delay_max > static_cast<double>(k.max_delay_steps))
        return fmt::format("max delay {:.0f} > {} steps", r.delay_max, k.max_delay_steps);
    if (r.mean_step_tokens <
        k.min_step_tokens_fraction * static_cast<double>(r.step_budget_tokens) - 1e-9)
        return fmt::format("{:.1f}% of the step budget per step < {:.1f}%",
                           100.0 * r.mean_step_tokens / static_cast<double>(r.step_budget_tokens),
                           100.0 * k.min_step_tokens_fraction);
    if (!m.fits())
        return fmt::format("memory: peak {:.1f} GB > {:.1f} GB usable", m.peak_bytes / 1e9,
                           m.usable_bytes / 1e9);
    return {};
}

// Steady state: outlier queues start empty and fill over the first steps, so a run's first
// steps hold fewer long documents than the steady state does (and its delays are lower). The
// measures count the steps [warmup, steps) only: there the documents packed are, in
// expectation, the documents drawn (the queues' backlog at the window's start stands in for
// the backlog left at its end), so neither the step times nor the delays favour a policy that
// merely defers long documents past the end of the sample.
std::int64_t warmup_steps(std::int64_t steps) {
    return steps >= 16 ? steps / 4 : 0;
}

candidate_result run_one(const cost_model& costs, const document_set& documents, const candidate& c,
                         std::int64_t steps, const tune_constraints& k, const memory_model& memory,
                         const runtime::plan_options& plan, const std::function<void()>& on_step) {
    evaluation_config config;
    config.packing = c.packing;
    config.sharding = c.sharding;
    config.steps = steps;
    config.plan = plan;
    config.top_ranks = 0;
    if (on_step)
        config.progress = [&](std::int64_t, std::int64_t) {
            on_step();
        };
    const auto warmup = warmup_steps(steps);
    std::map<std::int64_t, std::int64_t> delay_tokens; // over the window: delay -> tokens
    std::int64_t window_tokens = 0;
    config.on_batch = [&](const runtime::global_batch& b) {
        if (b.step < warmup)
            return;
        for (const auto& rep : b.replicas)
            for (const auto& mb : rep.micro_batches)
                for (const auto& d : mb.docs) {
                    delay_tokens[b.step - d.drawn_step] += d.tokens;
                    window_tokens += d.tokens;
                }
    };
    const auto e = evaluate(costs, documents, config);

    candidate_result r;
    r.config = c;
    r.name = e.name;
    r.steps = static_cast<std::int64_t>(e.step_seconds.size());
    r.warmup_steps = warmup;
    const auto first = static_cast<std::size_t>(std::min(warmup, r.steps));
    const auto n = e.step_seconds.size() - first;
    const std::size_t half = first + n / 2;
    double a = 0.0, b = 0.0, bubble = 0.0, imbalance = 0.0;
    for (std::size_t i = first; i < e.step_seconds.size(); ++i) {
        (i < half ? a : b) += e.step_seconds[i];
        bubble += e.steps[i].bubble_fraction;
        imbalance += e.packing_steps[i].imbalance;
    }
    if (n > 0) {
        r.mean_step_seconds = (a + b) / static_cast<double>(n);
        r.bubble_fraction = bubble / static_cast<double>(n);
        r.imbalance = imbalance / static_cast<double>(n);
        r.mean_step_tokens = static_cast<double>(window_tokens) / static_cast<double>(n);
    }
    if (half > first)
        r.first_half_seconds = a / static_cast<double>(half - first);
    if (e.step_seconds.size() > half)
        r.second_half_seconds = b / static_cast<double>(e.step_seconds.size() - half);
    std::int64_t weighted = 0;
    for (const auto& [delay, tokens] : delay_tokens)
        weighted += delay * tokens;
    if (window_tokens > 0) {
        r.delay_mean = static_cast<double>(weighted) / static_cast<double>(window_tokens);
        const auto p99 =
            static_cast<std::int64_t>(std::ceil(0.99 * static_cast<double>(window_tokens)));
        std::int64_t seen = 0;
        for (const auto& [delay, tokens] : delay_tokens) {
            seen += tokens;
            if (seen >= p99) {
                r.delay_p99 = static_cast<double>(delay);
                break;
            }
        }
        r.delay_max = static_cast<double>(delay_tokens.rbegin()->first);
    }
    r.cp_imbalance = e.sharding.weighted_attention_imbalance;
    r.step_budget_tokens = c.packing.step_tokens();
    r.waiting_documents_at_end = e.packing.waiting_documents_at_end;
    // Short final steps after the set ran out would bias the mean: an exhausted set counts only
    // when the steps asked for were all packed before the end.
    r.documents_exhausted = e.documents_exhausted || r.steps < steps;
    const auto m = candidate_memory(memory, c);
    r.memory_peak_gbytes = m.peak_bytes / 1e9;
    r.infeasible = check_constraints(r, k, m);
    r.feasible = r.infeasible.empty();
    // The early rungs judge delay on few steps: a candidate within 25% of the delay limits
    // there goes on to a longer sample rather than being dropped on noise.
    auto relaxed = k;
    relaxed.max_mean_delay *= 1.25;
    if (relaxed.max_delay_steps > 0)
        relaxed.max_delay_steps += (relaxed.max_delay_steps + 3) / 4;
    r.nearly_feasible = check_constraints(r, relaxed, m).empty();
    return r;
}

// Orders results: feasible first, then by mean step time; on equal times (S_max values that
// give the same batches) the one needing less memory, then less delay, then by key.
bool better(const candidate_result& a, const candidate_result& b) {
    if (a.feasible != b.feasible)
        return a.feasible;
    if (a.mean_step_seconds != b.mean_step_seconds)
        return a.mean_step_seconds < b.mean_step_seconds;
    if (a.memory_peak_gbytes != b.memory_peak_gbytes)
        return a.memory_peak_gbytes < b.memory_peak_gbytes;
    if (a.delay_mean != b.delay_mean)
        return a.delay_mean < b.delay_mean;
    return candidate_key(a.config) < candidate_key(b.config);
}

// Two results of the same batches and sharding decisions (e.g. S_max values that no micro-batch
// reached): the same step times, delay and imbalance.
bool same_outcome(const candidate_result& a, const candidate_result& b) {
    return a.mean_step_seconds == b.mean_step_seconds && a.delay_mean == b.delay_mean &&
           a.imbalance == b.imbalance && a.cp_imbalance == b.cp_imbalance;
}

class search {
public:
    search(const cost_model& costs, const document_set& documents, const tune_options& options,
           const memory_model& memory)
        : m_costs(costs), m_documents(documents), m_options(options), m_memory(memory),
          m_start(clock_type::now()) {
        const double budget = std::max(0.0, options.time_budget_seconds);
        m_soft = m_start + std::chrono::duration_cast<clock_type::duration>(
                               std::chrono::duration<double>(0.75 * budget));
        m_hard = m_start + std::chrono::duration_cast<clock_type::duration>(
                               std::chrono::duration<double>(budget));
        m_threads = options.threads > 0
                        ? options.threads
                        : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
    }

    [[nodiscard]] int threads() const noexcept { return m_threads; }
    [[nodiscard]] std::int64_t evaluations() const noexcept { return m_evaluations; }
    [[nodiscard]] bool past_soft() const { return clock_type::now() >= m_soft; }
    [[nodiscard]] bool stopped() const noexcept { return m_stopped; }
    [[nodiscard]] double elapsed() const {
        return std::chrono::duration<double>(clock_type::now() - m_start).count();
    }

    /// Evaluates `cands` on `steps` steps in parallel. `must`: ignore the deadlines (baselines);
    /// `late`: start after the soft deadline too, but stop at the hard one (the knob table).
    /// Results are in the order of `cands`; a candidate the deadline stopped is left out.
    std::vector<candidate_result> run(const std::vector<candidate>& cands, std::int64_t steps,
                                      const std::string& phase, bool must = false,
                                      bool late = false) {
        std::vector<std::optional<candidate_result>> slots(cands.size());
        std::vector<std::size_t> todo;
        for (std::size_t i = 0; i < cands.size(); ++i) {
            const auto key = cache_key(cands[i], steps);
            if (auto it = m_cache.find(key); it != m_cache.end())
                slots[i] = it->second;
            else if (std::none_of(todo.begin(), todo.end(),
                                  [&](std::size_t j) { return cache_key(cands[j], steps) == key; }))
                todo.push_back(i);
        }
        const auto start_until = late ? m_hard : m_soft;
        if (!must && clock_type::now() >= start_until && !todo.empty()) {
            m_stopped = true;
            todo.clear();
        }
        std::atomic<std::size_t> next{0};
        std::int64_t done = 0; // guarded by mutex
        std::mutex mutex;
        std::condition_variable cv;
        std::exception_ptr failure; // guarded by mutex
        auto worker = [&] {
            for (;;) {
                const auto k = next.fetch_add(1);
                if (k >= todo.size())
                    break;
                const auto i = todo[k];
                std::optional<candidate_result> r;
                bool cancelled = !must && clock_type::now() >= start_until;
                std::exception_ptr error;
                if (!cancelled) {
                    try {
                        const std::function<void()> check = [&] {
                            if (!must && clock_type::now() >= m_hard)
                                throw evaluation_cancelled{};
                        };
                        r = run_one(m_costs, m_documents, cands[i], steps, m_options.constraints,
                                    m_memory, m_options.plan, check);
                    } catch (const evaluation_cancelled&) {
                        cancelled = true;
                    } catch (...) {
                        error = std::current_exception();
                    }
                }
                std::lock_guard lock(mutex);
                slots[i] = std::move(r);
                m_stopped = m_stopped || cancelled;
                if (error && !failure) {
                    failure = error;
                    next = todo.size(); // the other workers stop taking work
                }
                ++done;
                cv.notify_one();
            }
        };
        std::vector<std::thread> pool;
        const auto n = std::min<std::size_t>(static_cast<std::size_t>(m_threads), todo.size());
        for (std::size_t t = 0; t < n; ++t)
            pool.emplace_back(worker);
        const auto total = static_cast<std::int64_t>(todo.size());
        {
            std::unique_lock lock(mutex);
            while (done < total && !failure) {
                const auto d = done;
                lock.unlock();
                report(phase, d, total);
                lock.lock();
                cv.wait_for(lock, std::chrono::milliseconds(200),
                            [&] { return done >= total || failure != nullptr; });
            }
        }
        for (auto& t : pool)
            t.join();
        if (failure)
            std::rethrow_exception(failure);
        std::vector<candidate_result> out;
        for (std::size_t i = 0; i < cands.size(); ++i) {
            if (!slots[i])
                continue;
            const auto key = cache_key(cands[i], steps);
            if (!m_cache.count(key)) {
                m_cache.emplace(key, *slots[i]);
                ++m_evaluations;
            }
            note_best(*slots[i], steps);
            out.push_back(*slots[i]);
        }
        report(phase, static_cast<std::int64_t>(todo.size()),
               static_cast<std::int64_t>(todo.size()));
        return out;
    }

    /// Every distinct candidate evaluated, on the most steps it ran (tune_result::evaluated).
    [[nodiscard]] std::vector<candidate_result> evaluated() const {
        std::map<std::string, const candidate_result*> largest;
        for (const auto& [key, r] : m_cache) {
            auto& slot = largest[candidate_key(r.config)];
            if (!slot || r.steps > slot->steps)
                slot = &r;
        }
        std::vector<candidate_result> out;
        out.reserve(largest.size());
        for (const auto& [key, r] : largest)
            out.push_back(*r);
        std::stable_sort(out.begin(), out.end(),
                         [](const candidate_result& a, const candidate_result& b) {
                             if (a.steps != b.steps)
                                 return a.steps > b.steps;
                             return a.mean_step_seconds < b.mean_step_seconds;
                         });
        return out;
    }

    /// The sample size the progress line's "best" refers to.
    void set_full_steps(std::int64_t steps) {
        m_full_steps = steps;
        m_best.reset();
        for (const auto& [key, r] : m_cache)
            if (key.ends_with(fmt::format("@{}", steps)))
                note_best(r, steps);
    }

private:
    static std::string cache_key(const candidate& c, std::int64_t steps) {
        return candidate_key(c) + fmt::format("@{}", steps);
    }

    void note_best(const candidate_result& r, std::int64_t steps) {
        if (steps != m_full_steps || !r.feasible)
            return;
        if (!m_best || better(r, *m_best))
            m_best = r;
    }

    void report(const std::string& phase, std::int64_t done, std::int64_t total) {
        if (!m_options.progress)
            return;
        tune_progress p;
        p.phase = phase;
        p.done = done;
        p.total = total;
        p.evaluated = m_evaluations + done;
        p.elapsed_seconds = elapsed();
        if (m_best) {
            p.best_step_seconds = m_best->mean_step_seconds;
            p.best = m_best->name;
        }
        m_options.progress(p);
    }

    const cost_model& m_costs;
    const document_set& m_documents;
    const tune_options& m_options;
    const memory_model& m_memory;
    clock_type::time_point m_start, m_soft, m_hard;
    int m_threads = 1;
    std::map<std::string, candidate_result> m_cache;
    std::int64_t m_evaluations = 0;
    std::int64_t m_full_steps = 0;
    std::optional<candidate_result> m_best;
    bool m_stopped = false;
};

void sort_results(std::vector<candidate_result>& v) {
    std::sort(v.begin(), v.end(), better);
}

// The best `n` feasible results with distinct keys (and distinct packings when
// `distinct_packing`); with `nearly`, the nearly feasible ones too (early rungs).
std::vector<candidate_result> top(std::vector<candidate_result> v, std::size_t n,
                                  bool distinct_packing = false, bool nearly = false) {
    if (nearly)
        for (auto& r : v)
            r.feasible = r.nearly_feasible;
    sort_results(v);
    std::vector<candidate_result> out;
    std::vector<std::string> seen;
    for (auto& r : v) {
        if (!r.feasible || out.size() >= n)
            continue;
        const auto key =
            distinct_packing ? to_json(r.config.packing).dump() : candidate_key(r.config);
        if (std::find(seen.begin(), seen.end(), key) != seen.end())
            continue;
        seen.push_back(key);
        out.push_back(std::move(r));
    }
    return out;
}

// The best `n` feasible results whose outcomes differ (same_outcome), best first.
std::vector<candidate_result> top_outcomes(const std::vector<candidate_result>& v, std::size_t n) {
    std::vector<candidate_result> out;
    for (auto& r : top(v, v.size())) {
        if (out.size() >= n)
            break;
        if (std::none_of(out.begin(), out.end(),
                         [&](const candidate_result& x) { return same_outcome(x, r); }))
            out.push_back(std::move(r));
    }
    return out;
}

std::vector<candidate> configs_of(const std::vector<candidate_result>& v) {
    std::vector<candidate> out;
    for (const auto& r : v)
        out.push_back(r.config);
    return out;
}

void dedupe(std::vector<candidate>& v) {
    std::vector<std::string> seen;
    std::vector<candidate> out;
    for (auto& c : v) {
        auto key = candidate_key(c);
        if (std::find(seen.begin(), seen.end(), key) != seen.end())
            continue;
        seen.push_back(std::move(key));
        out.push_back(std::move(c));
    }
    v = std::move(out);
}

ranking_stability measure_stability(const std::vector<candidate_result>& full) {
    ranking_stability s;
    std::vector<const candidate_result*> f;
    for (const auto& r : full)
        if (r.feasible)
            f.push_back(&r);
    s.candidates = static_cast<int>(f.size());
    if (f.empty())
        return s;
    s.steps_per_half = f.front()->steps / 2;
    if (f.size() >= 2) {
        std::int64_t concordant = 0, discordant = 0;
        for (std::size_t i = 0; i < f.size(); ++i)
            for (std::size_t j = i + 1; j < f.size(); ++j) {
                const double a = f[i]->first_half_seconds - f[j]->first_half_seconds;
                const double b = f[i]->second_half_seconds - f[j]->second_half_seconds;
                if (a * b > 0)
                    ++concordant;
                else if (a * b < 0)
                    ++discordant;
            }
        const double pairs = static_cast<double>(f.size() * (f.size() - 1) / 2);
        s.kendall_tau = static_cast<double>(concordant - discordant) / pairs;
    }
    auto regret = [&](auto choose, auto judge) {
        const auto* pick = *std::min_element(
            f.begin(), f.end(), [&](auto* x, auto* y) { return choose(*x) < choose(*y); });
        const auto* best = *std::min_element(
            f.begin(), f.end(), [&](auto* x, auto* y) { return judge(*x) < judge(*y); });
        return judge(*best) > 0.0 ? judge(*pick) / judge(*best) - 1.0 : 0.0;
    };
    auto first = [](const candidate_result& r) {
        return r.first_half_seconds;
    };
    auto second = [](const candidate_result& r) {
        return r.second_half_seconds;
    };
    s.regret = std::max(regret(first, second), regret(second, first));
    return s;
}

std::string sharding_text(const sharding_spec& s) {
    std::string t(to_string(s.policy));
    if (s.policy == sharding_policy::hybrid)
        t += s.hybrid_threshold_tokens ? fmt::format(" >={}", *s.hybrid_threshold_tokens)
                                       : std::string(" auto");
    return t;
}

std::string thresholds_text(const std::vector<std::int64_t>& t) {
    if (t.empty())
        return "none";
    std::string s;
    for (auto x : t)
        s += (s.empty() ? "" : ",") +
             (x % 1024 == 0 ? fmt::format("{}k", x / 1024) : fmt::format("{}", x));
    return s;
}

} // namespace

double parse_seconds(std::string_view text, std::string_view what) {
    std::string t(text);
    double scale = 1.0;
    auto strip = [&](std::string_view suffix, double factor) {
        if (t.size() > suffix.size() && t.ends_with(suffix)) {
            t.resize(t.size() - suffix.size());
            scale = factor;
            return true;
        }
        return false;
    };
    strip("ms", 1e-3) || strip("s", 1.0) || strip("m", 60.0) || strip("h", 3600.0);
    char* end = nullptr;
    const double v = std::strtod(t.c_str(), &end);
    if (t.empty() || end != t.c_str() + t.size() || !(v > 0.0) || v * scale > 1e7)
        throw input_error(fmt::format("{} \"{}\": expected a positive duration such as 60s, 90, "
                                      "2m or 500ms",
                                      what, text));
    return v * scale;
}

std::int64_t available_steps(const document_set& documents, std::int64_t step_tokens) {
    if (step_tokens <= 0)
        return 0;
    const std::int64_t whole = documents.tokens / step_tokens;
    // Outlier queues and fixed-greedy windows (up to 8 steps) hold documents back: keep a margin
    // of 16 steps plus two windows, and half the steps for a prefix of a longer stream
    // (tokens_for_steps).
    if (documents.complete)
        return std::max<std::int64_t>(0, whole - 32);
    std::int64_t lo = 0, hi = whole;
    while (lo < hi) {
        const auto mid = lo + (hi - lo + 1) / 2;
        if (tokens_for_steps(mid, step_tokens, 8) <= documents.tokens)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

candidate_result evaluate_candidate(const cost_model& costs, const document_set& documents,
                                    const candidate& c, std::int64_t steps,
                                    const tune_constraints& constraints, const memory_model& memory,
                                    const runtime::plan_options& plan) {
    return run_one(costs, documents, c, steps, constraints, memory, plan, {});
}

namespace {

// One tuning run in its named phases; tune() calls them in order. The phases share the search
// (its cache, clock and budget), the sample size, the baselines and the pool of candidates
// evaluated on the full sample.
class tuning {
public:
    tuning(const cost_model& costs, std::int64_t context_tokens, const document_set& documents,
           const tune_options& options)
        : m_costs(costs), m_l(costs.layout()), m_context(context_tokens), m_documents(documents),
          m_options(options) {}

    tune_result run() && {
        size_memory();
        m_out.space = make_search_space(m_l, m_context, sorted_lengths(), *m_memory,
                                        m_options.vary_micro_batches);
        m_out.space.max_delay_steps = m_options.max_delay;
        choose_sample();
        m_search.emplace(m_costs, m_documents, m_options, *m_memory);
        m_search->set_full_steps(m_steps);
        run_baselines();
        coarse_pass();
        refine(m_steps);
        grow_until_stable();
        settle_knobs();
        answer();
        return std::move(m_out);
    }

private:
    std::vector<std::int64_t> sorted_lengths() const {
        std::vector<std::int64_t> lengths;
        lengths.reserve(m_documents.documents.size());
        for (const auto& d : m_documents.documents)
            lengths.push_back(d.tokens);
        std::sort(lengths.begin(), lengths.end());
        return lengths;
    }

    /// The memory model under the constraint. The layout's own plain packing must fit, or the
    /// estimate (not the layout) is off: then the limit is relaxed to plain's peak.
    void size_memory() {
        m_memory_opts = m_options.memory;
        if (m_options.constraints.memory_gbytes > 0.0)
            m_memory_opts.memory_gbytes = m_options.constraints.memory_gbytes;
        m_memory = std::make_unique<memory_model>(m_costs.model(), m_l, m_costs.hardware(),
                                                  m_memory_opts, m_options.plan.partition);
        const auto base = m_memory->estimate(m_context, m_l.pp(),
                                             static_cast<std::int64_t>(m_l.pp()) * m_context);
        if (base.fits())
            return;
        m_out.notes.push_back(fmt::format(
            "the memory model puts plain packing at {:.1f} GB per rank, over the {:.1f} GB "
            "usable; the memory limit is relaxed to that peak (no candidate may need more than "
            "the baseline)",
            base.peak_bytes / 1e9, base.usable_bytes / 1e9));
        m_memory_opts.memory_gbytes =
            base.peak_bytes * (1.0 + 1e-9) / 1e9 / (1.0 - m_memory_opts.reserve_fraction);
        m_memory = std::make_unique<memory_model>(m_costs.model(), m_l, m_costs.hardware(),
                                                  m_memory_opts, m_options.plan.partition);
    }

    /// Steps per evaluation: what the documents hold after the margins, at least 8.
    void choose_sample() {
        const auto step_tokens = m_out.space.step_tokens();
        m_avail = std::min(available_steps(m_documents, step_tokens), m_options.max_sample_steps);
        if (m_avail < 8)
            throw input_error(fmt::format(
                "tune: the data ({} documents, {} tokens) fills only {} steps of {} tokens after "
                "the margin outlier queues and windows need; at least 8 are needed (more data, or "
                "a smaller layout or context)",
                m_documents.documents.size(), m_documents.tokens,
                std::max<std::int64_t>(0, m_avail), step_tokens));
        m_steps = m_options.sample_steps > 0 ? std::min(m_options.sample_steps, m_avail)
                                             : std::min<std::int64_t>(256, m_avail);
        m_steps = std::max<std::int64_t>(8, m_steps);
    }

    /// 0. The baselines and the paper's settings, on the full sample, always.
    void run_baselines() {
        m_base = {plain_candidate(m_out.space)};
        for (auto& c : fixed_greedy_candidates(m_out.space))
            m_base.push_back(std::move(c));
        m_base.push_back(paper_candidate(m_out.space));
        m_search->run(m_base, m_steps, "baselines", true);
        m_pool = m_base;
    }

    void add_pool(const std::vector<candidate_result>& v) {
        for (const auto& r : v)
            m_pool.push_back(r.config);
        dedupe(m_pool);
    }

    /// 1. The coarse pass by successive halving, with adaptive sharding.
    void coarse_pass() {
        std::mt19937_64 rng(m_options.seed);
        const sharding_spec adaptive{
            m_l.cp() > 1 ? sharding_policy::adaptive : sharding_policy::per_seq, {}};
        auto coarse = coarse_packings(m_out.space, adaptive);
        coarse.push_back({plain_candidate(m_out.space).packing, adaptive, ""});
        for (auto& c : fixed_greedy_candidates(m_out.space))
            coarse.push_back({c.packing, adaptive, ""});
        for (auto& c : random_packings(m_out.space, adaptive, m_options.random_points, rng))
            coarse.push_back(std::move(c));
        coarse.push_back(paper_candidate(m_out.space));
        dedupe(coarse);
        std::vector<std::int64_t> rungs;
        if (m_steps >= 32)
            rungs = {m_steps / 4, m_steps / 2, m_steps};
        else
            rungs = {m_steps};
        std::vector<candidate> alive = coarse;
        for (std::size_t r = 0; r < rungs.size(); ++r) {
            auto results = m_search->run(alive, rungs[r], fmt::format("coarse {} steps", rungs[r]));
            if (r + 1 == rungs.size())
                break;
            const auto keep = std::max<std::size_t>(4, (alive.size() + 2) / 3);
            alive = configs_of(top(std::move(results), keep, false, true));
        }
        add_pool(m_search->run(alive, m_steps, "coarse"));
    }

    std::vector<candidate_result> ranking(std::int64_t n) {
        return m_search->run(m_pool, n, "ranking");
    }

    /// Every sharding of `packing`, on `n` steps, into the pool.
    void try_shardings(const packing_config& packing, std::vector<candidate>& out) const {
        for (const auto& sh : m_out.space.shardings)
            out.push_back({packing, sh, ""});
    }

    /// 2-3. Sharding on the best packings, hill climbing on the fine grid, sharding on the best.
    void refine(std::int64_t n) {
        {
            std::vector<candidate> shard_cands;
            for (const auto& r :
                 top(ranking(n), static_cast<std::size_t>(m_options.sharding_finalists), true))
                try_shardings(r.config.packing, shard_cands);
            dedupe(shard_cands);
            add_pool(m_search->run(shard_cands, n, "sharding"));
        }
        for (int iteration = 0; iteration < 12 && !m_search->past_soft(); ++iteration)
            if (!climb(n, iteration))
                break;
        const auto best = top(ranking(n), 1);
        if (!best.empty()) {
            std::vector<candidate> shard_cands;
            try_shardings(best.front().config.packing, shard_cands);
            add_pool(m_search->run(shard_cands, n, "sharding"));
        }
    }

    /// One hill-climbing step: the best distinct variable-length packings try their neighbours
    /// (plain and fixed-greedy have none, and sharding variants of one packing share theirs).
    /// False when there is nothing new to try or the leader did not change.
    bool climb(std::int64_t n, int iteration) {
        std::vector<candidate_result> climbers;
        for (auto& r : top(ranking(n), m_pool.size(), true))
            if (climbers.size() < static_cast<std::size_t>(m_options.climbers) &&
                (r.config.packing.policy == packing_policy::varlen ||
                 r.config.packing.policy == packing_policy::wlb))
                climbers.push_back(std::move(r));
        std::vector<candidate> next;
        for (const auto& c : climbers)
            for (auto& x : packing_neighbours(m_out.space, c.config))
                next.push_back(std::move(x));
        dedupe(next);
        std::vector<candidate> fresh;
        for (auto& c : next) {
            const auto key = candidate_key(c);
            if (std::none_of(m_pool.begin(), m_pool.end(),
                             [&](const candidate& p) { return candidate_key(p) == key; }))
                fresh.push_back(std::move(c));
        }
        if (fresh.empty())
            return false;
        const auto before = top(ranking(n), 1);
        add_pool(m_search->run(fresh, n, fmt::format("refine {}", iteration + 1)));
        const auto after = top(ranking(n), 1);
        return before.empty() || after.empty() ||
               candidate_key(before.front().config) != candidate_key(after.front().config);
    }

    /// 4. The ranking's stability between the two halves of the sample; the sample doubles
    /// while it is unstable, carrying the leaders (distinct outcomes, so that S_max variants of
    /// one packing do not crowd out the others) and refining again on the longer sample.
    void grow_until_stable() {
        m_results = ranking(m_steps);
        m_out.stability = measure_stability(m_results);
        const auto grow_limit = std::min(m_avail, m_options.max_sample_steps);
        int growths = 0;
        while (m_out.stability.regret > m_options.max_regret && m_steps * 2 <= grow_limit &&
               !m_search->past_soft()) {
            m_steps *= 2;
            ++growths;
            m_search->set_full_steps(m_steps);
            auto keep = m_base;
            for (auto& r : top_outcomes(m_results, 24))
                keep.push_back(r.config);
            dedupe(keep);
            m_search->run(m_base, m_steps, "baselines", true);
            m_pool = configs_of(
                m_search->run(keep, m_steps, fmt::format("stability {} steps", m_steps)));
            for (auto& c : m_base)
                m_pool.push_back(c);
            dedupe(m_pool);
            refine(m_steps);
            m_results = ranking(m_steps);
            m_out.stability = measure_stability(m_results);
        }
        m_out.stability.growths = growths;
        m_out.stability.stable = m_out.stability.regret <= m_options.max_regret;
    }

    struct revert {
        std::string knob, tuned, reverted;
        candidate c;
    };

    /// The winner with each of its knobs set back, one at a time.
    std::vector<revert> reverts_of(const candidate& w) const {
        std::vector<revert> reverts;
        const auto& sp = m_out.space;
        const bool variable =
            w.packing.policy == packing_policy::varlen || w.packing.policy == packing_policy::wlb;
        if (w.sharding.policy != sharding_policy::per_seq)
            reverts.push_back({"sharding",
                               sharding_text(w.sharding),
                               "per-seq",
                               {w.packing, {sharding_policy::per_seq, {}}, ""}});
        if (w.packing.policy == packing_policy::wlb)
            reverts.push_back({"outlier queues",
                               thresholds_text(w.packing.thresholds),
                               "none",
                               {make_packing(sp, packing_policy::varlen, w.packing.micro_batches,
                                             w.packing.smax_tokens, {}),
                                w.sharding, ""}});
        if (variable && w.packing.micro_batch_limit() != m_context)
            reverts.push_back(
                {"S_max",
                 fmt::format("{:.3g}x", static_cast<double>(w.packing.micro_batch_limit()) /
                                            static_cast<double>(m_context)),
                 "1x",
                 {make_packing(sp, w.packing.policy, w.packing.micro_batches, m_context,
                               w.packing.thresholds),
                  w.sharding, ""}});
        if (variable && w.packing.micro_batches != m_l.pp())
            reverts.push_back({"micro-batches",
                               fmt::format("{}", w.packing.micro_batches),
                               fmt::format("{}", m_l.pp()),
                               {make_packing(sp, w.packing.policy, m_l.pp(), w.packing.smax_tokens,
                                             w.packing.thresholds),
                                w.sharding, ""}});
        if (w.packing.policy != packing_policy::plain)
            reverts.push_back(
                {"packing",
                 describe(w.packing),
                 "plain",
                 {make_packing(sp, packing_policy::plain, m_l.pp(), 0, {}), w.sharding, ""}});
        return reverts;
    }

    /// What each knob of `winner` bought; `expected` gets how many reverts were run.
    std::vector<knob_effect> knob_effects(const candidate_result& winner, std::size_t& expected) {
        const auto reverts = reverts_of(winner.config);
        std::vector<candidate> cands;
        for (const auto& r : reverts)
            cands.push_back(r.c);
        expected = reverts.size();
        const auto got = m_search->run(cands, m_steps, "knobs", false, true);
        std::vector<knob_effect> effects;
        for (const auto& r : reverts) {
            // a revert the hard deadline stopped is left out of the table
            const auto key = candidate_key(r.c);
            const auto it = std::find_if(got.begin(), got.end(), [&](const candidate_result& g) {
                return candidate_key(g.config) == key;
            });
            if (it == got.end())
                continue;
            knob_effect k;
            k.knob = r.knob;
            k.tuned = r.tuned;
            k.reverted = r.reverted;
            k.without = *it;
            k.slowdown = winner.mean_step_seconds > 0.0
                             ? it->mean_step_seconds / winner.mean_step_seconds
                             : 1.0;
            effects.push_back(std::move(k));
        }
        return effects;
    }

    /// 5. What each knob bought. A revert that is feasible and faster than the winner becomes
    /// the winner (and its knobs are measured in turn), so the answer is never beaten by undoing
    /// one of its own choices; each round strictly improves.
    void settle_knobs() {
        for (int round = 0; round < 8; ++round) {
            const auto best = top(m_results, 1);
            if (best.empty())
                break;
            m_out.knobs = knob_effects(best.front(), m_knobs_expected);
            bool improved = false;
            for (const auto& k : m_out.knobs)
                if (k.without.feasible && better(k.without, best.front())) {
                    m_results.push_back(k.without);
                    improved = true;
                }
            if (!improved)
                break;
        }
    }

    candidate_result result_of(const candidate& c) {
        const auto key = candidate_key(c);
        for (const auto& r : m_results)
            if (candidate_key(r.config) == key)
                return r;
        return m_search->run({c}, m_steps, "baselines", true).front();
    }

    /// The answer: the best feasible candidate on the full sample (plain is always feasible: no
    /// delay, the full budget, the memory limit at least its peak), the baselines, the
    /// runners-up, the search's statistics and notes.
    void answer() {
        sort_results(m_results);
        m_out.plain = result_of(m_base.front());
        m_out.paper = result_of(m_base.back());
        m_out.fixed_greedy = result_of(m_base[1]);
        for (std::size_t i = 1; i + 1 < m_base.size(); ++i) {
            const auto r = result_of(m_base[i]);
            if (r.feasible && (!m_out.fixed_greedy.feasible || better(r, m_out.fixed_greedy)))
                m_out.fixed_greedy = r;
        }
        // Runners-up: the best of each other packing (its sharding alternatives are in the knob
        // table), leaving out those that only repeat an outcome already listed (S_max values no
        // micro-batch reached).
        const auto ranked = top(m_results, m_results.size(), true);
        m_out.winner = ranked.empty() ? m_out.plain : ranked.front();
        for (std::size_t i = 1; i < ranked.size() && m_out.runners_up.size() < 5; ++i) {
            const auto repeats = [&](const candidate_result& x) {
                return same_outcome(x, ranked[i]);
            };
            if (!repeats(m_out.winner) &&
                std::none_of(m_out.runners_up.begin(), m_out.runners_up.end(), repeats))
                m_out.runners_up.push_back(ranked[i]);
        }
        m_out.sample_steps = m_steps;
        m_out.sample_documents = static_cast<std::int64_t>(m_documents.documents.size());
        m_out.winner_memory = candidate_memory(*m_memory, m_out.winner.config);
        m_out.evaluations = m_search->evaluations();
        m_out.evaluated = m_search->evaluated();
        m_out.threads = m_search->threads();
        m_out.elapsed_seconds = m_search->elapsed();
        m_out.stopped_by_budget = m_search->stopped();
        add_notes();
    }

    void add_notes() {
        if (m_out.stopped_by_budget)
            m_out.notes.push_back(fmt::format(
                "the time budget ({:.0f} s) cut the search short: a longer budget may find a "
                "better configuration, and the result may differ between runs",
                m_options.time_budget_seconds));
        if (m_out.knobs.size() < m_knobs_expected)
            m_out.notes.push_back(
                fmt::format("the time budget left {} of the {} knob reverts out of the table",
                            m_knobs_expected - m_out.knobs.size(), m_knobs_expected));
        if (!m_out.stability.stable)
            m_out.notes.push_back(fmt::format(
                "the ranking is not stable at {} steps (choosing on one half of the sample loses "
                "{:.1f}% on the other): more data would make the choice firmer",
                m_steps, 100.0 * m_out.stability.regret));
        if (!m_out.paper.feasible)
            m_out.notes.push_back("the paper's settings break a constraint here: " +
                                  m_out.paper.infeasible);
    }

    const cost_model& m_costs;
    const runtime::layout& m_l;
    const std::int64_t m_context;
    const document_set& m_documents;
    const tune_options& m_options;
    memory_options m_memory_opts;
    std::unique_ptr<memory_model> m_memory;
    std::optional<search> m_search;
    std::int64_t m_avail = 0;      ///< steps the documents hold
    std::int64_t m_steps = 0;      ///< the full sample
    std::vector<candidate> m_base; ///< plain, fixed-greedy (windows), the paper's settings
    std::vector<candidate> m_pool; ///< every candidate evaluated on the full sample
    std::vector<candidate_result> m_results; ///< the pool ranked on the full sample
    std::size_t m_knobs_expected = 0;
    tune_result m_out;
};

} // namespace

tune_result tune(const cost_model& costs, std::int64_t context_tokens,
                 const document_set& documents, const tune_options& options) {
    return tuning(costs, context_tokens, documents, options).run();
}

} // namespace wlb::tuner
