#include "reports/table.hpp"

#include "base/error.hpp"

#include <algorithm>
#include <fmt/format.h>

namespace wlb::reports {

table::table(std::vector<std::string> header, std::vector<align> aligns)
    : m_header(std::move(header)), m_aligns(std::move(aligns)) {
    // First column left, the rest right, unless told otherwise.
    const bool defaulted = m_aligns.empty();
    m_aligns.resize(m_header.size(), align::right);
    if (defaulted && !m_aligns.empty())
        m_aligns[0] = align::left;
}

void table::add_row(std::vector<std::string> cells) {
    WLB_EXPECTS(cells.size() == m_header.size(), "row has {} cells, header has {}", cells.size(),
                m_header.size());
    m_rows.push_back(std::move(cells));
}

void table::add_rule() {
    m_rows.emplace_back();
}

std::string table::render() const {
    std::vector<std::size_t> width(m_header.size());
    for (std::size_t c = 0; c < m_header.size(); ++c)
        width[c] = m_header[c].size();
    for (const auto& row : m_rows)
        for (std::size_t c = 0; c < row.size(); ++c)
            width[c] = std::max(width[c], row[c].size());
    std::size_t total = 0;
    for (auto w : width)
        total += w + 2;
    total = total >= 2 ? total - 2 : 0;

    std::string out;
    auto emit = [&](const std::vector<std::string>& cells) {
        std::string line;
        for (std::size_t c = 0; c < cells.size(); ++c) {
            if (c > 0)
                line += "  ";
            if (m_aligns[c] == align::left)
                line += fmt::format("{:<{}}", cells[c], width[c]);
            else
                line += fmt::format("{:>{}}", cells[c], width[c]);
        }
        while (!line.empty() && line.back() == ' ')
            line.pop_back();
        out += line;
        out += '\n';
    };
    emit(m_header);
    out += std::string(total, '-') + '\n';
    for (const auto& row : m_rows) {
        if (row.empty())
            out += std::string(total, '-') + '\n';
        else
            emit(row);
    }
    return out;
}

std::string format_rank_list(const std::vector<int>& ranks) {
    if (ranks.empty())
        return "-";
    if (ranks.size() <= 8)
        return fmt::format("{}", fmt::join(ranks, " "));
    const int step = ranks[1] - ranks[0];
    bool constant_step = true;
    for (std::size_t i = 1; i < ranks.size(); ++i)
        constant_step = constant_step && (ranks[i] - ranks[i - 1] == step);
    if (!constant_step)
        return fmt::format("{}", fmt::join(ranks, " "));
    return fmt::format("{} {} .. {} ({} ranks, step {})", ranks[0], ranks[1], ranks.back(),
                       ranks.size(), step);
}

} // namespace wlb::reports
