#include "tuner/packing/fixed_sequences.hpp"

#include "base/error.hpp"

namespace wlb::tuner {

std::optional<runtime::global_batch> fixed_sequence_packer::pack(std::int64_t step,
                                                                 const document_pull& pull) {
    const auto context = m_config.context_tokens;
    if (!m_filling.active) {
        m_filling = {true,
                     std::vector<runtime::micro_batch>(
                         static_cast<std::size_t>(m_config.step_micro_batches())),
                     0, 0, context};
        if (m_pending) {
            auto d = *m_pending;
            m_pending.reset();
            d.drawn_step = step;
            place(d, step); // an empty step holds a whole document or a piece's first context
        }
    }
    while (!m_ended && !m_pending && m_filling.placed < m_config.step_tokens()) {
        auto d = pull(step); // may throw: the step so far stays in m_filling
        if (!d) {
            m_ended = true;
            break;
        }
        check_document(*d, context);
        place(*d, step);
    }
    auto mbs = std::move(m_filling.mbs);
    const auto placed = m_filling.placed;
    m_filling = {};
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

std::vector<runtime::document> fixed_sequence_packer::waiting() const {
    std::vector<runtime::document> out;
    for (const auto& mb : m_filling.mbs)
        out.insert(out.end(), mb.docs.begin(), mb.docs.end());
    if (m_pending)
        out.push_back(*m_pending);
    return out;
}

packer_state fixed_sequence_packer::save_state() const {
    WLB_EXPECTS(!m_filling.active, "save_state() while a step's intake is in progress");
    packer_state s;
    s.pending = m_pending;
    s.ended = m_ended;
    return s;
}

void fixed_sequence_packer::load_state(const packer_state& s) {
    check_packer_state(s, m_config);
    m_pending = s.pending;
    m_ended = s.ended;
    m_filling = {};
}

} // namespace wlb::tuner
