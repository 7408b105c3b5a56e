// wlb: WLB-LLM's variable-length packing with outlier delay (Algorithm 1, multi-level queues).
//
// Thresholds L1 < ... < Ln split documents: one of length d >= L1 is an outlier and waits in
// queue i, where Li <= d < Li+1 (Ln+1 = infinity); the others are packed as in varlen. A queue
// holding at least N documents (N = micro-batches per step, all replicas) releases exactly its N
// oldest at once, one per micro-batch, so every micro-batch of that step gets one outlier of
// similar length and the short documents even out the rest. After the stream ends, queues
// release what they hold (fewer than N) so the run drains.
//
// Each step, in this order:
//   1. draw until carried + released outliers + new short documents reach the step's budget
//      (a queue that becomes ready while drawing counts its release toward the budget);
//   2. place the documents carried over from the last step (oldest first) by the least-work rule;
//   3. place each released group, longest queue first, one document per micro-batch: each to the
//      least-work micro-batch that has none of its group yet and room for it;
//   4. place the new short documents longest first by the least-work rule
//   (tuner/packing/packer_varlen.cpp); whatever does not fit S_max or the budget is carried over to
//   the next step.
//
// With a delay bound K (packing_config::max_delay_steps), a document that has waited K steps
// (queued or carried) is due: it leaves its queue whatever the queue holds, counts toward the
// step's intake, and is placed before anything else, oldest first, each on the micro-batch that
// fits it and holds the fewest due documents (then the least work), so that due outliers spread
// as a released group would. Without a bound the steps are exactly those above.
#include "base/error.hpp"
#include "tuner/cost/cost_model.hpp"
#include "tuner/packing/packing_common.hpp"

#include <algorithm>
#include <deque>

namespace wlb::tuner {
namespace {

class wlb_packer final : public packer {
public:
    wlb_packer(const packing_config& c, const cost_model& costs)
        : packer(c), m_costs(costs), m_queues(c.thresholds.size()) {}

    std::optional<runtime::global_batch> pack(std::int64_t step,
                                              const document_pull& pull) override {
        const auto n = static_cast<std::size_t>(m_config.step_micro_batches());
        if (!m_intake.active) {
            m_due = take_due(step);
            std::int64_t have = tokens_of(m_carried) + tokens_of(m_due);
            for (const auto& q : m_queues)
                if (q.size() >= n)
                    have += release_tokens(q, n);
            m_intake = {true, have, {}};
        }
        if (!m_ended)
            m_ended = !draw_until(pull, step, m_config.context_tokens, m_intake.have_tokens,
                                  m_config.step_tokens(),
                                  [&](const runtime::document& d) -> std::int64_t {
                                      weighed_doc w{d, m_costs.document_fwd_seconds(d.tokens)};
                                      const int qi = queue_of(d.tokens);
                                      if (qi < 0) {
                                          m_intake.fresh.push_back(w);
                                          return d.tokens;
                                      }
                                      auto& q = m_queues[static_cast<std::size_t>(qi)];
                                      q.push_back(w);
                                      return q.size() == n ? release_tokens(q, n) : 0;
                                  });
        auto fresh = std::move(m_intake.fresh);
        auto due = std::move(m_due);
        m_due.clear();
        m_intake = {};
        // Release: full groups of N; after the stream's end, whatever a queue holds.
        std::vector<std::vector<weighed_doc>> groups;
        for (std::size_t i = m_queues.size(); i-- > 0;) {
            auto& q = m_queues[i];
            if (q.size() >= n || (m_ended && !q.empty())) {
                const auto take = std::min(n, q.size());
                groups.emplace_back(q.begin(), q.begin() + static_cast<std::ptrdiff_t>(take));
                q.erase(q.begin(), q.begin() + static_cast<std::ptrdiff_t>(take));
            }
        }
        if (m_ended && fresh.empty() && m_carried.empty() && groups.empty() && due.empty() &&
            queued() == 0)
            return std::nullopt;

        step_builder b(static_cast<int>(n), m_config.micro_batch_limit(), m_config.step_tokens());
        std::vector<weighed_doc> left;
        place_due(b, due, left);
        sort_carried(m_carried);
        place_least_work(b, m_carried, left);
        std::vector<char> taken(n);
        for (auto& g : groups) {
            sort_longest_first(g);
            std::fill(taken.begin(), taken.end(), 0);
            for (const auto& d : g) {
                int best = -1;
                for (int i = 0; i < b.size(); ++i)
                    if (!taken[static_cast<std::size_t>(i)] && b.fits(i, d.doc.tokens) &&
                        (best < 0 || b.work(i) < b.work(best)))
                        best = i;
                if (best < 0) {
                    left.push_back(d);
                    continue;
                }
                taken[static_cast<std::size_t>(best)] = 1;
                b.place(best, d);
            }
        }
        sort_longest_first(fresh);
        place_least_work(b, fresh, left);
        m_carried = std::move(left);
        return b.finish(step, m_config.replicas);
    }

    [[nodiscard]] std::vector<runtime::document> waiting() const override {
        auto out = documents_of(m_carried);
        for (const auto& d : m_due)
            out.push_back(d.doc);
        for (const auto& d : m_intake.fresh)
            out.push_back(d.doc);
        for (const auto& q : m_queues)
            for (const auto& d : q)
                out.push_back(d.doc);
        return out;
    }

    [[nodiscard]] packer_state save_state() const override {
        WLB_EXPECTS(!m_intake.active, "save_state() while a step's intake is in progress");
        packer_state s;
        s.carried = documents_of(m_carried);
        s.ended = m_ended;
        for (const auto& q : m_queues) {
            auto& docs = s.queues.emplace_back();
            for (const auto& d : q)
                docs.push_back(d.doc);
        }
        return s;
    }
    void load_state(const packer_state& s) override {
        check_packer_state(s, m_config);
        m_carried = weigh(s.carried, &m_costs);
        for (std::size_t i = 0; i < m_queues.size(); ++i) {
            const auto docs = weigh(s.queues[i], &m_costs);
            m_queues[i].assign(docs.begin(), docs.end());
        }
        m_ended = s.ended;
        m_intake = {};
        m_due.clear();
    }
    [[nodiscard]] std::int64_t min_draw_tokens() const override {
        // A drawn document counts its own tokens toward the budget, or releases a queue that
        // reaches N and so counts the documents parked there too: the draw stops no earlier than
        // the budget less what is counted (the carried and releasable documents, or the intake's
        // count so far) and every token parked in a queue not yet released.
        if (m_ended)
            return 0;
        const auto n = static_cast<std::size_t>(m_config.step_micro_batches());
        std::int64_t counted = m_intake.active ? m_intake.have_tokens : tokens_of(m_carried);
        for (const auto& q : m_queues) {
            if (q.size() < n)
                counted += release_tokens(q, q.size());
            else if (!m_intake.active)
                // With a delay bound, due documents past the first N may count too.
                counted += release_tokens(q, m_config.max_delay_steps > 0 ? q.size() : n);
        }
        return std::max<std::int64_t>(0, m_config.step_tokens() - counted);
    }
    [[nodiscard]] std::unique_ptr<packer> clone() const override {
        return std::make_unique<wlb_packer>(*this);
    }

private:
    /// Without a bound, nothing. With one: the carried and queued documents that have waited
    /// max_delay_steps steps at `step`, taken out of the carry and the queues.
    std::vector<weighed_doc> take_due(std::int64_t step) {
        std::vector<weighed_doc> due;
        const auto k = m_config.max_delay_steps;
        if (k <= 0)
            return due;
        auto is_due = [&](const weighed_doc& d) {
            return step - d.doc.drawn_step >= k;
        };
        for (auto it = m_carried.begin(); it != m_carried.end();)
            if (is_due(*it)) {
                due.push_back(*it);
                it = m_carried.erase(it);
            } else {
                ++it;
            }
        for (auto& q : m_queues)
            for (auto it = q.begin(); it != q.end();)
                if (is_due(*it)) {
                    due.push_back(*it);
                    it = q.erase(it);
                } else {
                    ++it;
                }
        sort_carried(due); // oldest first, then longest
        return due;
    }

    /// Due documents first into the step: each on the micro-batch that fits it and holds the
    /// fewest due documents so far, then the least work (lowest index on ties).
    static void place_due(step_builder& b, const std::vector<weighed_doc>& due,
                          std::vector<weighed_doc>& left) {
        std::vector<int> held(static_cast<std::size_t>(b.size()), 0);
        for (const auto& d : due) {
            int best = -1;
            for (int i = 0; i < b.size(); ++i) {
                if (!b.fits(i, d.doc.tokens))
                    continue;
                const auto hi = held[static_cast<std::size_t>(i)];
                if (best < 0 || hi < held[static_cast<std::size_t>(best)] ||
                    (hi == held[static_cast<std::size_t>(best)] && b.work(i) < b.work(best)))
                    best = i;
            }
            if (best < 0) {
                left.push_back(d); // the due documents exceed the step: the bound slips
                continue;
            }
            ++held[static_cast<std::size_t>(best)];
            b.place(best, d);
        }
    }

    [[nodiscard]] int queue_of(std::int64_t tokens) const noexcept {
        int qi = -1;
        for (std::size_t i = 0; i < m_config.thresholds.size(); ++i)
            if (tokens >= m_config.thresholds[i])
                qi = static_cast<int>(i);
        return qi;
    }
    static std::int64_t release_tokens(const std::deque<weighed_doc>& q, std::size_t n) {
        std::int64_t t = 0;
        for (std::size_t i = 0; i < n && i < q.size(); ++i)
            t += q[i].doc.tokens;
        return t;
    }
    [[nodiscard]] std::size_t queued() const noexcept {
        std::size_t k = 0;
        for (const auto& q : m_queues)
            k += q.size();
        return k;
    }

    const cost_model& m_costs;
    std::vector<std::deque<weighed_doc>> m_queues; // index i holds lengths in [Li, Li+1)
    std::vector<weighed_doc> m_carried;
    intake_state m_intake;
    std::vector<weighed_doc> m_due; ///< past the delay bound: taken at the intake's start
    bool m_ended = false;
};

} // namespace

std::unique_ptr<packer> make_wlb_packer(const packing_config& config, const cost_model& costs) {
    return std::make_unique<wlb_packer>(config, costs);
}

} // namespace wlb::tuner
