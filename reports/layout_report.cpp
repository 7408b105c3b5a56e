#include "reports/layout_report.hpp"

#include "base/provenance.hpp"
#include "reports/table.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace wlb::reports {

std::string layout_text(const runtime::layout& l) {
    using runtime::axis;
    std::string out = fmt::format("layout {}  order {} (innermost first)  world size {}\n\n",
                                  l.spec(), l.order_string(), l.world_size());
    table ranks({"rank", "tp", "cp", "pp", "dp"},
                {table::align::right, table::align::right, table::align::right, table::align::right,
                 table::align::right});
    for (int r = 0; r < l.world_size(); ++r) {
        auto c = l.coords_of(r);
        ranks.add_row({std::to_string(r), std::to_string(c.tp), std::to_string(c.cp),
                       std::to_string(c.pp), std::to_string(c.dp)});
    }
    out += ranks.render();
    for (axis a : runtime::all_axes) {
        auto groups = l.groups(a);
        out +=
            fmt::format("\n{} groups: {} of {} ranks\n", axis_name(a), groups.size(), l.degree(a));
        for (std::size_t g = 0; g < groups.size(); ++g)
            out += fmt::format("  {} {:>4}: {}\n", axis_name(a), g, format_rank_list(groups[g]));
    }
    if (l.vpp() > 1)
        out += fmt::format("\nvirtual pipeline stages per rank: {} (model chunks per pp rank)\n",
                           l.vpp());
    return out;
}

nlohmann::json layout_json(const runtime::layout& l) {
    using runtime::axis;
    auto j = wlb::report_header(layout_schema, {});
    j["layout"] = {{"spec", l.spec()}, {"order", l.order_string()},
                   {"tp", l.tp()},     {"cp", l.cp()},
                   {"pp", l.pp()},     {"dp", l.dp()},
                   {"vpp", l.vpp()},   {"world_size", l.world_size()}};
    auto& ranks = j["ranks"] = nlohmann::json::array();
    for (int r = 0; r < l.world_size(); ++r) {
        auto c = l.coords_of(r);
        ranks.push_back({{"rank", r}, {"tp", c.tp}, {"cp", c.cp}, {"pp", c.pp}, {"dp", c.dp}});
    }
    auto& groups = j["groups"] = nlohmann::json::object();
    for (axis a : runtime::all_axes)
        groups[std::string(axis_name(a))] = l.groups(a);
    return j;
}

} // namespace wlb::reports
