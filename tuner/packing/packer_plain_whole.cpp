// plain-whole: fixed-length packing that keeps every document whole, the "original packing" of
// WLB-LLM's Table 2 (imbalance 1.44 at 7B/128K), beside plain's Megatron cut at the boundary.
//
// Documents in dataloader order fill sequences of at most the context length, one sequence per
// micro-batch, micro-batch 0 of replica 0 first. A document that does not fit the rest of the
// current sequence closes it (the rest is padding) and opens the next one; one that does not fit
// the step's last sequence waits, whole, for the next step, where it opens the first sequence.
// As in plain, a document moved to the next step counts as drawn there (the dataloader hands the
// step what it trains): the policy's delay is zero by construction. A long document therefore
// keeps its whole quadratic attention in one micro-batch, which is where the original packing's
// imbalance comes from.
#include "tuner/packing/packing_common.hpp"

namespace wlb::tuner {
namespace {

class plain_whole_packer final : public packer {
public:
    explicit plain_whole_packer(const packing_config& c) : packer(c) {}

    std::optional<runtime::global_batch> pack(std::int64_t step,
                                              const document_pull& pull) override {
        const auto context = m_config.context_tokens;
        const int count = m_config.step_micro_batches();
        std::vector<runtime::micro_batch> mbs(static_cast<std::size_t>(count));
        std::int64_t placed = 0;
        int current = 0;
        std::int64_t space = context;
        // Places d whole; false when the step has no sequence left for it.
        auto place = [&](const runtime::document& d) {
            while (d.tokens > space) {
                if (current + 1 >= count)
                    return false;
                ++current;
                space = context;
            }
            mbs[static_cast<std::size_t>(current)].docs.push_back(d);
            space -= d.tokens;
            placed += d.tokens;
            return true;
        };
        if (m_pending) {
            auto d = *m_pending;
            m_pending.reset();
            d.drawn_step = step;
            if (!place(d))
                m_pending = d; // cannot happen: an empty step holds any document
        }
        while (!m_ended && !m_pending && placed < m_config.step_tokens()) {
            auto d = pull(step);
            if (!d) {
                m_ended = true;
                break;
            }
            check_document(*d, context);
            if (!place(*d)) {
                d->drawn_step = step + 1; // opens the next step's first sequence
                m_pending = *d;
            }
        }
        if (placed == 0)
            return std::nullopt;
        runtime::global_batch b;
        b.step = step;
        b.replicas.resize(static_cast<std::size_t>(m_config.replicas));
        const auto per = static_cast<std::size_t>(m_config.micro_batches);
        for (std::size_t i = 0; i < mbs.size(); ++i)
            b.replicas[i / per].micro_batches.push_back(std::move(mbs[i]));
        return b;
    }

    [[nodiscard]] std::vector<runtime::document> waiting() const override {
        if (m_pending)
            return {*m_pending};
        return {};
    }

private:
    std::optional<runtime::document> m_pending; // a document that did not fit the last step
    bool m_ended = false;
};

} // namespace

std::unique_ptr<packer> make_plain_whole_packer(const packing_config& config) {
    return std::make_unique<plain_whole_packer>(config);
}

} // namespace wlb::tuner
