// fixed-greedy: WLB-LLM's Fixed-Len Greedy baseline. Sequences keep the fixed context length,
// but documents are assigned to them to balance predicted work over a packing window of W
// global batches.
//
// At the first step of each window the packer draws W steps' budget (W x micro-batches x
// context tokens, carried documents included) and builds W x N sequences of at most the context
// length: the carried documents first (oldest first), then the new ones longest first, each into
// the sequence of least predicted forward work (cost_model::document_fwd_seconds) that has room
// for it; a document no sequence has room for is carried over to the next window. The sequences
// are then ordered by work, heaviest first, and dealt to the window's steps N at a time, so each
// step holds sequences of similar work. A window of 1 balances one global batch at a time; a
// wider window balances better and reorders documents across up to W steps (delay up to W - 1).
#include "base/error.hpp"
#include "tuner/cost/cost_model.hpp"
#include "tuner/packing/packing_common.hpp"

#include <algorithm>
#include <deque>
#include <numeric>

namespace wlb::tuner {
namespace {

struct sequence {
    runtime::micro_batch mb;
    std::int64_t tokens = 0;
    double work = 0.0;
};

class fixed_greedy_packer final : public carry_over_packer {
public:
    fixed_greedy_packer(const packing_config& c, const cost_model& costs)
        : carry_over_packer(c, &costs, c.step_tokens() * c.window) {}

    std::optional<runtime::global_batch> pack(std::int64_t step,
                                              const document_pull& pull) override {
        if (m_ready.empty())
            build_window(step, pull);
        if (m_ready.empty())
            return std::nullopt;
        runtime::global_batch b = std::move(m_ready.front());
        m_ready.pop_front();
        b.step = step;
        return b;
    }

    [[nodiscard]] std::vector<runtime::document> waiting() const override {
        auto out = carry_over_packer::waiting();
        for (const auto& b : m_ready)
            for (const auto& r : b.replicas)
                for (const auto& mb : r.micro_batches)
                    out.insert(out.end(), mb.docs.begin(), mb.docs.end());
        return out;
    }

    [[nodiscard]] packer_state save_state() const override {
        auto s = carry_over_packer::save_state();
        s.ready.assign(m_ready.begin(), m_ready.end());
        return s;
    }
    void load_state(const packer_state& s) override {
        carry_over_packer::load_state(s); // checks s first
        m_ready.assign(s.ready.begin(), s.ready.end());
    }
    [[nodiscard]] std::int64_t min_draw_tokens() const override {
        // Only a window's first step draws: the window's budget, less the carried documents.
        return m_ready.empty() ? carry_over_packer::min_draw_tokens() : 0;
    }
    [[nodiscard]] std::unique_ptr<packer> clone() const override {
        return std::make_unique<fixed_greedy_packer>(*this);
    }

private:
    void build_window(std::int64_t step, const document_pull& pull) {
        const auto per_step = static_cast<std::size_t>(m_config.step_micro_batches());
        const auto window = static_cast<std::size_t>(m_config.window);
        auto fresh = draw_fresh(step, pull);
        if (fresh.empty() && m_carried.empty())
            return;
        std::vector<sequence> seqs(per_step * window);
        std::vector<weighed_doc> left;
        const auto context = m_config.context_tokens;
        auto assign = [&](const std::vector<weighed_doc>& docs) {
            for (const auto& d : docs) {
                sequence* best = nullptr;
                for (auto& s : seqs)
                    if (s.tokens + d.doc.tokens <= context && (!best || s.work < best->work))
                        best = &s;
                if (!best) {
                    left.push_back(d);
                    continue;
                }
                best->mb.docs.push_back(d.doc);
                best->tokens += d.doc.tokens;
                best->work += d.work;
            }
        };
        sort_carried(m_carried);
        assign(m_carried);
        sort_longest_first(fresh);
        assign(fresh);
        m_carried = std::move(left);

        std::vector<std::size_t> order(seqs.size());
        std::iota(order.begin(), order.end(), std::size_t{0});
        std::stable_sort(order.begin(), order.end(),
                         [&](std::size_t a, std::size_t b) { return seqs[a].work > seqs[b].work; });
        const auto per_replica = static_cast<std::size_t>(m_config.micro_batches);
        for (std::size_t w = 0; w < window; ++w) {
            runtime::global_batch b;
            b.replicas.resize(static_cast<std::size_t>(m_config.replicas));
            bool any = false;
            for (std::size_t i = 0; i < per_step; ++i) {
                auto& s = seqs[order[w * per_step + i]];
                any = any || !s.mb.docs.empty();
                b.replicas[i / per_replica].micro_batches.push_back(std::move(s.mb));
            }
            // After the stream's end a window may not fill every step: emit only steps that hold
            // documents (the carried documents, if any, follow in the next window).
            if (any || !m_ended)
                m_ready.push_back(std::move(b));
        }
    }

    std::deque<runtime::global_batch> m_ready; // the window's steps not yet emitted
};

} // namespace

std::unique_ptr<packer> make_fixed_greedy_packer(const packing_config& config,
                                                 const cost_model& costs) {
    return std::make_unique<fixed_greedy_packer>(config, costs);
}

} // namespace wlb::tuner
