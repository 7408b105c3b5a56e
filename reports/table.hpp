// Terminal tables: columns aligned, numbers right-aligned, one header rule.
#pragma once

#include <string>
#include <vector>

namespace wlb::reports {

class table {
public:
    enum class align { left, right };

    explicit table(std::vector<std::string> header, std::vector<align> aligns = {});
    void add_row(std::vector<std::string> cells);
    /// A horizontal rule between groups of rows.
    void add_rule();
    [[nodiscard]] std::string render() const;
    [[nodiscard]] std::size_t rows() const noexcept { return m_rows.size(); }

private:
    std::vector<std::string> m_header;
    std::vector<align> m_aligns;
    std::vector<std::vector<std::string>> m_rows; // an empty row is a rule
};

/// "0-7" style compact text of a group of ranks with a constant step: small groups are listed
/// in full ("0 8 16 24"), larger ones as "0 8 .. 120 (16 ranks, step 8)".
std::string format_rank_list(const std::vector<int>& ranks);

} // namespace wlb::reports
