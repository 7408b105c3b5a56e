#include "reports/data_report.hpp"

#include "reports/table.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace wlb::reports {
namespace {

std::string tokens_text(std::int64_t t) {
    if (t >= 1024 && t % 1024 == 0)
        return fmt::format("{}K", t / 1024);
    return fmt::format("{}", t);
}

// 1234567 -> "1,234,567"
std::string grouped(std::int64_t v) {
    std::string digits = fmt::format("{}", v < 0 ? -v : v);
    std::string out;
    for (std::size_t i = 0; i < digits.size(); ++i) {
        if (i > 0 && (digits.size() - i) % 3 == 0)
            out += ',';
        out += digits[i];
    }
    return v < 0 ? "-" + out : out;
}

std::string percent(std::int64_t part, std::int64_t whole) {
    return whole > 0 ? fmt::format("{:.1f}%", 100.0 * double(part) / double(whole)) : "-";
}

} // namespace

std::string data_text(const tuner::data_profile& p) {
    const auto& s = p.source;
    const auto& st = p.stream;
    std::string out = fmt::format("data: {}\n\n", p.description);
    table stats({"statistic", "value"}, {table::align::left, table::align::right});
    stats.add_row({"documents", grouped(s.documents)});
    stats.add_row({"tokens", grouped(s.tokens)});
    stats.add_row({"mean tokens", fmt::format("{:.0f}", s.mean_tokens)});
    stats.add_row(
        {"p50 / p90 / p99", fmt::format("{} / {} / {}", s.p50_tokens, s.p90_tokens, s.p99_tokens)});
    stats.add_row({"min / max", fmt::format("{} / {}", s.min_tokens, s.max_tokens)});
    stats.add_rule();
    stats.add_row({"documents > 32K", fmt::format("{} ({} of tokens)", s.over_32k_documents,
                                                  percent(s.over_32k_tokens, s.tokens))});
    stats.add_row({"documents > 64K", fmt::format("{} ({} of tokens)", s.over_64k_documents,
                                                  percent(s.over_64k_tokens, s.tokens))});
    stats.add_row({fmt::format("documents > context {}", tokens_text(s.context_tokens)),
                   fmt::format("{} ({} of tokens)", s.over_context_documents,
                               percent(s.over_context_tokens, s.tokens))});
    out += stats.render();

    out += fmt::format("\nlength histogram (log2 buckets)\n");
    table hist({"tokens", "documents", "% docs", "% tokens"},
               {table::align::left, table::align::right, table::align::right, table::align::right});
    for (const auto& b : s.histogram)
        hist.add_row(
            {fmt::format("[{}, {})", tokens_text(b.lower_tokens), tokens_text(b.upper_tokens)),
             grouped(b.documents), percent(b.documents, s.documents), percent(b.tokens, s.tokens)});
    out += hist.render();

    out +=
        fmt::format("\ncontext policy: {} documents over the context", st.over_context_documents);
    if (st.truncated_documents > 0)
        out += fmt::format(", {} truncated, {} tokens dropped ({})", st.truncated_documents,
                           st.dropped_tokens, percent(st.dropped_tokens, st.source_tokens));
    if (st.split_documents > 0)
        out += fmt::format(", {} split into {} pieces", st.split_documents, st.split_pieces);
    out += fmt::format("; stream: {} documents, {} tokens", st.documents, st.tokens);
    if (st.empty_documents > 0)
        out += fmt::format("; {} empty source documents skipped", st.empty_documents);
    out += "\n";
    return out;
}

nlohmann::json data_json(const tuner::data_profile& p, const std::string& spec,
                         const std::vector<wlb::input_identity>& inputs) {
    auto j = wlb::report_header(data_schema, inputs);
    const auto& st = p.stream;
    j["source"] = {{"spec", spec}, {"description", p.description}};
    j["stream"] = {{"source_documents", st.source_documents},
                   {"source_tokens", st.source_tokens},
                   {"documents", st.documents},
                   {"tokens", st.tokens},
                   {"empty_documents", st.empty_documents},
                   {"over_context_documents", st.over_context_documents},
                   {"truncated_documents", st.truncated_documents},
                   {"dropped_tokens", st.dropped_tokens},
                   {"split_documents", st.split_documents},
                   {"split_pieces", st.split_pieces}};
    j["lengths"] = tuner::to_json(p.source);
    return j;
}

} // namespace wlb::reports
