#include "tuner/packing/packing_measures.hpp"

#include "tuner/cost/cost_model.hpp"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

namespace wlb::tuner {
namespace {

// Nearest-rank quantiles of a sample.
quantiles quantiles_of(std::vector<double> v) {
    quantiles q;
    if (v.empty())
        return q;
    std::sort(v.begin(), v.end());
    double sum = 0.0;
    for (double x : v)
        sum += x;
    auto rank = [&](double p) {
        auto k = static_cast<std::size_t>(std::ceil(p * static_cast<double>(v.size())));
        return v[std::clamp<std::size_t>(k, 1, v.size()) - 1];
    };
    q.mean = sum / static_cast<double>(v.size());
    q.p50 = rank(0.50);
    q.p99 = rank(0.99);
    q.max = v.back();
    return q;
}

double ratio_max_mean(const std::vector<double>& v) {
    double sum = 0.0;
    double mx = 0.0;
    for (double x : v) {
        sum += x;
        mx = std::max(mx, x);
    }
    if (v.empty() || sum <= 0.0)
        return 1.0;
    return mx * static_cast<double>(v.size()) / sum;
}

} // namespace

step_measures measure_step(const runtime::global_batch& batch, const cost_model& costs) {
    step_measures m;
    m.step = batch.step;
    std::vector<double> fwd;
    std::vector<double> attention;
    bool first = true;
    for (const auto& r : batch.replicas) {
        for (const auto& mb : r.micro_batches) {
            double a = 0.0;
            std::int64_t tokens = 0;
            for (const auto& d : mb.docs) {
                a += static_cast<double>(d.tokens) * static_cast<double>(d.tokens);
                tokens += d.tokens;
            }
            fwd.push_back(costs.micro_batch_fwd_seconds(mb));
            attention.push_back(a);
            m.documents += static_cast<std::int64_t>(mb.docs.size());
            m.tokens += tokens;
            m.min_micro_batch_tokens = first ? tokens : std::min(m.min_micro_batch_tokens, tokens);
            m.max_micro_batch_tokens = std::max(m.max_micro_batch_tokens, tokens);
            first = false;
        }
    }
    m.imbalance = ratio_max_mean(fwd);
    m.attention_imbalance = ratio_max_mean(attention);
    if (!fwd.empty()) {
        m.max_fwd_seconds = *std::max_element(fwd.begin(), fwd.end());
        double sum = 0.0;
        for (double x : fwd)
            sum += x;
        m.mean_fwd_seconds = sum / static_cast<double>(fwd.size());
    }
    return m;
}

run_measures::run_measures(const cost_model& costs, const packing_config& config)
    : m_costs(costs), m_config(config) {}

const step_measures& run_measures::add_step(const runtime::global_batch& batch,
                                            std::int64_t waiting_documents, double pack_seconds) {
    auto m = measure_step(batch, m_costs);
    m.waiting_documents = waiting_documents;
    m.pack_seconds = pack_seconds;
    for (const auto& r : batch.replicas)
        for (const auto& mb : r.micro_batches)
            for (const auto& d : mb.docs) {
                const auto delay = batch.step - d.drawn_step;
                m_delay_tokens[delay] += d.tokens;
                if (delay > 0)
                    ++m_delayed_documents;
            }
    m_steps.push_back(m);
    return m_steps.back();
}

void run_measures::finish(const std::vector<runtime::document>& waiting) {
    m_waiting_documents = static_cast<std::int64_t>(waiting.size());
    m_waiting_tokens = 0;
    for (const auto& d : waiting)
        m_waiting_tokens += d.tokens;
}

run_summary run_measures::summary() const {
    run_summary s;
    s.steps = static_cast<std::int64_t>(m_steps.size());
    s.step_budget_tokens = m_config.step_tokens();
    s.micro_batch_limit_tokens = m_config.micro_batch_limit();
    std::vector<double> imb;
    std::vector<double> att;
    double waiting = 0.0;
    double pack = 0.0;
    for (const auto& m : m_steps) {
        s.documents += m.documents;
        s.tokens += m.tokens;
        imb.push_back(m.imbalance);
        att.push_back(m.attention_imbalance);
        waiting += static_cast<double>(m.waiting_documents);
        s.max_waiting_documents = std::max(s.max_waiting_documents, m.waiting_documents);
        s.max_micro_batch_tokens = std::max(s.max_micro_batch_tokens, m.max_micro_batch_tokens);
        pack += m.pack_seconds;
        s.max_pack_seconds = std::max(s.max_pack_seconds, m.pack_seconds);
    }
    s.imbalance = quantiles_of(std::move(imb));
    s.attention_imbalance = quantiles_of(std::move(att));
    if (s.steps > 0) {
        const auto n = static_cast<double>(s.steps);
        s.mean_waiting_documents = waiting / n;
        s.mean_pack_seconds = pack / n;
        s.mean_step_tokens = static_cast<double>(s.tokens) / n;
    }
    // Token-weighted delay distribution, exact from the histogram.
    std::int64_t total = 0;
    for (const auto& [delay, tokens] : m_delay_tokens) {
        total += tokens;
        s.delay_token_iterations += delay * tokens;
        s.delay_histogram.emplace_back(delay, tokens);
    }
    if (total > 0) {
        s.delay_iterations.mean =
            static_cast<double>(s.delay_token_iterations) / static_cast<double>(total);
        auto at = [&](double p) {
            const auto need = static_cast<std::int64_t>(std::ceil(p * static_cast<double>(total)));
            std::int64_t seen = 0;
            for (const auto& [delay, tokens] : m_delay_tokens) {
                seen += tokens;
                if (seen >= need)
                    return static_cast<double>(delay);
            }
            return static_cast<double>(m_delay_tokens.rbegin()->first);
        };
        s.delay_iterations.p50 = at(0.50);
        s.delay_iterations.p99 = at(0.99);
        s.delay_iterations.max = static_cast<double>(m_delay_tokens.rbegin()->first);
    }
    s.delayed_documents = m_delayed_documents;
    s.waiting_documents_at_end = m_waiting_documents;
    s.waiting_tokens_at_end = m_waiting_tokens;
    return s;
}

namespace {
// {"iterations": [...], "tokens": [...]}: two columns, as the HTML report charts them.
nlohmann::json delay_histogram_json(const run_summary& s) {
    auto iterations = nlohmann::json::array();
    auto tokens = nlohmann::json::array();
    for (const auto& [delay, n] : s.delay_histogram) {
        iterations.push_back(delay);
        tokens.push_back(n);
    }
    return {{"iterations", std::move(iterations)}, {"tokens", std::move(tokens)}};
}

nlohmann::json to_json(const quantiles& q) {
    return {{"mean", q.mean}, {"p50", q.p50}, {"p99", q.p99}, {"max", q.max}};
}
} // namespace

nlohmann::json to_json(const run_summary& s) {
    return {{"steps", s.steps},
            {"documents", s.documents},
            {"tokens", s.tokens},
            {"predicted_imbalance", to_json(s.imbalance)},
            {"attention_imbalance", to_json(s.attention_imbalance)},
            {"delay_iterations", to_json(s.delay_iterations)},
            {"delay_token_iterations", s.delay_token_iterations},
            {"delay_histogram", delay_histogram_json(s)},
            {"delayed_documents", s.delayed_documents},
            {"waiting_documents",
             {{"mean", s.mean_waiting_documents},
              {"max", s.max_waiting_documents},
              {"at_end", s.waiting_documents_at_end}}},
            {"waiting_tokens_at_end", s.waiting_tokens_at_end},
            {"step_tokens", {{"mean", s.mean_step_tokens}, {"budget", s.step_budget_tokens}}},
            {"micro_batch_tokens",
             {{"max", s.max_micro_batch_tokens}, {"limit", s.micro_batch_limit_tokens}}},
            {"pack_seconds", {{"mean", s.mean_pack_seconds}, {"max", s.max_pack_seconds}}}};
}

nlohmann::json to_json(const step_measures& s) {
    return {{"step", s.step},
            {"documents", s.documents},
            {"tokens", s.tokens},
            {"predicted_imbalance", s.imbalance},
            {"attention_imbalance", s.attention_imbalance},
            {"predicted_max_fwd_seconds_per_layer", s.max_fwd_seconds},
            {"predicted_mean_fwd_seconds_per_layer", s.mean_fwd_seconds},
            {"micro_batch_tokens",
             {{"min", s.min_micro_batch_tokens}, {"max", s.max_micro_batch_tokens}}},
            {"waiting_documents", s.waiting_documents},
            {"pack_seconds", s.pack_seconds}};
}

} // namespace wlb::tuner
