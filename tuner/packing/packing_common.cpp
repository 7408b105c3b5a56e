#include "tuner/packing/packing_common.hpp"

#include "base/error.hpp"
#include "tuner/cost/cost_model.hpp"

#include <algorithm>
#include <fmt/format.h>

namespace wlb::tuner {

void check_document(const runtime::document& d, std::int64_t context_tokens) {
    if (d.tokens < 1)
        throw input_error(fmt::format("document {} has {} tokens; a packer needs positive lengths",
                                      d.id, d.tokens));
    if (d.tokens > context_tokens)
        throw input_error(fmt::format("document {} has {} tokens, over the context {}: the "
                                      "document stream must truncate or split it first",
                                      d.id, d.tokens, context_tokens));
}

step_builder::step_builder(int micro_batches, std::int64_t limit_tokens, std::int64_t budget_tokens)
    : m_mbs(static_cast<std::size_t>(micro_batches)),
      m_tokens(static_cast<std::size_t>(micro_batches), 0),
      m_work(static_cast<std::size_t>(micro_batches), 0.0), m_limit(limit_tokens),
      m_budget(budget_tokens) {}

void step_builder::place(int i, const weighed_doc& d) {
    const auto k = static_cast<std::size_t>(i);
    WLB_EXPECTS(fits(i, d.doc.tokens), "document {} ({} tokens) does not fit micro-batch {}",
                d.doc.id, d.doc.tokens, i);
    m_mbs[k].docs.push_back(d.doc);
    m_tokens[k] += d.doc.tokens;
    m_work[k] += d.work;
    m_total += d.doc.tokens;
}

int step_builder::least_work() const noexcept {
    return static_cast<int>(std::min_element(m_work.begin(), m_work.end()) - m_work.begin());
}

int step_builder::least_tokens() const noexcept {
    return static_cast<int>(std::min_element(m_tokens.begin(), m_tokens.end()) - m_tokens.begin());
}

runtime::global_batch step_builder::finish(std::int64_t step, int replicas) {
    runtime::global_batch b;
    b.step = step;
    b.replicas.resize(static_cast<std::size_t>(replicas));
    const std::size_t per = m_mbs.size() / static_cast<std::size_t>(replicas);
    for (std::size_t i = 0; i < m_mbs.size(); ++i)
        b.replicas[i / per].micro_batches.push_back(std::move(m_mbs[i]));
    return b;
}

void sort_longest_first(std::vector<weighed_doc>& pool) {
    std::sort(pool.begin(), pool.end(), [](const weighed_doc& a, const weighed_doc& b) {
        if (a.doc.tokens != b.doc.tokens)
            return a.doc.tokens > b.doc.tokens;
        return a.doc.id < b.doc.id;
    });
}

void sort_carried(std::vector<weighed_doc>& carried) {
    std::sort(carried.begin(), carried.end(), [](const weighed_doc& a, const weighed_doc& b) {
        if (a.doc.drawn_step != b.doc.drawn_step)
            return a.doc.drawn_step < b.doc.drawn_step;
        if (a.doc.tokens != b.doc.tokens)
            return a.doc.tokens > b.doc.tokens;
        return a.doc.id < b.doc.id;
    });
}

void place_least_work(step_builder& b, const std::vector<weighed_doc>& docs,
                      std::vector<weighed_doc>& left_over) {
    for (const auto& d : docs) {
        if (const int i = b.least_work(); b.fits(i, d.doc.tokens))
            b.place(i, d);
        else if (const int j = b.least_tokens(); b.fits(j, d.doc.tokens))
            b.place(j, d);
        else
            left_over.push_back(d);
    }
}

std::int64_t tokens_of(const std::vector<weighed_doc>& docs) noexcept {
    std::int64_t n = 0;
    for (const auto& d : docs)
        n += d.doc.tokens;
    return n;
}

std::vector<runtime::document> documents_of(const std::vector<weighed_doc>& pool) {
    std::vector<runtime::document> out;
    out.reserve(pool.size());
    for (const auto& d : pool)
        out.push_back(d.doc);
    return out;
}

std::vector<weighed_doc> weigh(const std::vector<runtime::document>& docs,
                               const cost_model* costs) {
    std::vector<weighed_doc> out;
    out.reserve(docs.size());
    for (const auto& d : docs)
        out.push_back({d, costs ? costs->document_fwd_seconds(d.tokens) : 0.0});
    return out;
}

carry_over_packer::carry_over_packer(const packing_config& config, const cost_model* costs,
                                     std::int64_t intake_tokens)
    : packer(config), m_costs(costs), m_intake_tokens(intake_tokens) {}

std::vector<weighed_doc> carry_over_packer::draw_fresh(std::int64_t step,
                                                       const document_pull& pull) {
    if (!m_intake.active)
        m_intake = {true, tokens_of(m_carried), {}};
    if (!m_ended)
        m_ended = !draw_until(pull, step, m_config.context_tokens, m_intake.have_tokens,
                              m_intake_tokens, [&](const runtime::document& d) {
                                  m_intake.fresh.push_back(
                                      {d, m_costs ? m_costs->document_fwd_seconds(d.tokens) : 0.0});
                                  return d.tokens;
                              });
    auto fresh = std::move(m_intake.fresh);
    m_intake = {};
    return fresh;
}

std::vector<runtime::document> carry_over_packer::waiting() const {
    auto out = documents_of(m_carried);
    for (const auto& d : m_intake.fresh)
        out.push_back(d.doc);
    return out;
}

packer_state carry_over_packer::save_state() const {
    WLB_EXPECTS(!m_intake.active, "save_state() while a step's intake is in progress");
    packer_state s;
    s.carried = documents_of(m_carried);
    s.ended = m_ended;
    return s;
}

void carry_over_packer::load_state(const packer_state& s) {
    check_packer_state(s, m_config);
    m_carried = weigh(s.carried, m_costs);
    m_ended = s.ended;
    m_intake = {};
}

std::int64_t carry_over_packer::min_draw_tokens() const {
    // draw_until counts every drawn token toward the target, from the carried documents on.
    const auto have = m_intake.active ? m_intake.have_tokens : tokens_of(m_carried);
    return m_ended ? 0 : std::max<std::int64_t>(0, m_intake_tokens - have);
}

} // namespace wlb::tuner
