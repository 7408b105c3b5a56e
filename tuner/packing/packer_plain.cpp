// plain: WLB-LLM's Plain-4D baseline, Megatron-style fixed-length packing.
//
// Documents in dataloader order fill sequences of exactly the context length, one sequence per
// micro-batch, micro-batch 0 of replica 0 first. A document that crosses a sequence boundary is
// cut there, as Megatron's GPTDataset does: its first part ends this sequence and the rest (same
// id, the remaining tokens) opens the next one, also across steps. Under the document mask the
// two parts attend only inside their own sequence, so each part is costed as a document of its
// own length. A part continued into the next step counts as drawn in that step: this policy
// trains every token in the step whose budget it falls in, so its delay is zero by construction.
// Every sequence is full except possibly the ones after the stream's end.
#include "tuner/packing/packing_common.hpp"

namespace wlb::tuner {
namespace {

class plain_packer final : public packer {
public:
    explicit plain_packer(const packing_config& c) : packer(c) {}

    std::optional<runtime::global_batch> pack(std::int64_t step,
                                              const document_pull& pull) override {
        const auto context = m_config.context_tokens;
        const int count = m_config.step_micro_batches();
        std::vector<runtime::micro_batch> mbs(static_cast<std::size_t>(count));
        std::int64_t placed = 0;
        int current = 0;
        std::int64_t space = context;
        auto place = [&](runtime::document d) {
            // Cut at sequence boundaries; whatever is left past the step's last sequence waits.
            while (d.tokens > 0 && current < count) {
                if (space == 0) {
                    ++current;
                    space = context;
                    continue;
                }
                runtime::document part = d;
                part.tokens = std::min(d.tokens, space);
                mbs[static_cast<std::size_t>(current)].docs.push_back(part);
                space -= part.tokens;
                placed += part.tokens;
                d.tokens -= part.tokens;
            }
            if (d.tokens > 0) {
                d.drawn_step = step + 1; // continues in the next step's first sequence
                m_pending = d;
            }
        };
        if (m_pending) {
            auto d = *m_pending;
            m_pending.reset();
            d.drawn_step = step;
            place(d);
        }
        while (!m_ended && !m_pending && placed < m_config.step_tokens()) {
            auto d = pull(step);
            if (!d) {
                m_ended = true;
                break;
            }
            check_document(*d, context);
            place(*d);
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

    [[nodiscard]] packer_state save_state() const override {
        packer_state s;
        s.pending = m_pending;
        s.ended = m_ended;
        return s;
    }
    void load_state(const packer_state& s) override {
        check_packer_state(s, m_config);
        m_pending = s.pending;
        m_ended = s.ended;
    }
    [[nodiscard]] std::int64_t min_draw_tokens() const override {
        // The pending piece opens the step; drawing fills the rest of its sequences.
        if (m_ended)
            return 0;
        return m_config.step_tokens() - (m_pending ? m_pending->tokens : 0);
    }
    [[nodiscard]] std::unique_ptr<packer> clone() const override {
        return std::make_unique<plain_packer>(*this);
    }

private:
    std::optional<runtime::document> m_pending; // the rest of a document cut at the step's end
    bool m_ended = false;
};

} // namespace

std::unique_ptr<packer> make_plain_packer(const packing_config& config) {
    return std::make_unique<plain_packer>(config);
}

} // namespace wlb::tuner
