#include "reports/simulate_report.hpp"

#include "reports/table.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace wlb::reports {
namespace {

std::string ms(double seconds) {
    return fmt::format("{:.2f}", seconds * 1e3);
}
std::string pct(double fraction) {
    return fmt::format("{:.1f}%", fraction * 100);
}

} // namespace

nlohmann::json simulate_json(const tuner::cost_model& costs, const simulate_context& c,
                             const tuner::simulate_job_result& r) {
    auto j = runtime::report_header(simulate_schema, c.inputs);
    j["simulated"] = true;
    j["note"] = "simulated: durations from the cost model, not measured";
    j["layout"] = {{"spec", costs.layout().spec()},
                   {"order", costs.layout().order_string()},
                   {"world_size", costs.layout().world_size()}};
    j["model"] = c.model;
    j["hardware"] = c.hardware;
    j["schedule"] = c.schedule;
    j["stage_partition"] = c.partition;
    j["faults"] = c.faults;
    j["total_seconds"] = r.total_seconds;
    j["mean_step_seconds"] = r.steps.empty() ? 0.0 : r.total_seconds / r.steps.size();
    auto& steps = j["steps"] = nlohmann::json::array();
    for (const auto& s : r.steps) {
        nlohmann::json cp = nlohmann::json::object();
        for (const auto& [k, v] : s.critical_path)
            cp[k] = v;
        auto slow = nlohmann::json::array();
        for (const auto& w : s.slowest)
            slow.push_back({{"rank", w.rank},
                            {"tp", w.where.tp},
                            {"cp", w.where.cp},
                            {"pp", w.where.pp},
                            {"dp", w.where.dp},
                            {"busy_seconds", w.busy_seconds},
                            {"attention_seconds", w.attention_seconds},
                            {"exposed_comm_seconds", w.exposed_comm_seconds},
                            {"idle_seconds", w.idle_seconds},
                            {"busy_over_mean", w.busy_over_mean},
                            {"why", w.why}});
        steps.push_back({{"step", s.step},
                         {"step_seconds", s.step_seconds},
                         {"bubble_fraction", s.bubble_fraction},
                         {"exposed_comm_fraction", s.exposed_comm_fraction},
                         {"compute_imbalance", s.compute_imbalance},
                         {"critical_path_seconds", cp},
                         {"slowest_ranks", slow}});
    }
    return j;
}

std::string simulate_text(const tuner::cost_model& costs, const simulate_context& c,
                          const tuner::simulate_job_result& r) {
    std::string out = fmt::format(
        "simulated step times (cost model, not measured): {} on {}, layout {} ({} ranks), {}, "
        "stage partition {}\n",
        c.model, c.hardware, costs.layout().spec(), costs.layout().world_size(), c.schedule,
        c.partition);
    if (!c.faults.empty()) {
        std::string f;
        for (const auto& x : c.faults)
            f += (f.empty() ? "" : ", ") + x;
        out += fmt::format("injected faults: {}\n", f);
    }
    out += "\n";
    table steps({"step", "time (ms)", "bubble", "exposed comm", "imbalance", "crit: compute", "tp",
                 "cp", "pp", "dp"});
    for (const auto& s : r.steps) {
        std::vector<std::string> row = {std::to_string(s.step), ms(s.step_seconds),
                                        pct(s.bubble_fraction), pct(s.exposed_comm_fraction),
                                        fmt::format("{:.3f}", s.compute_imbalance)};
        for (const char* k : {"compute", "tp", "cp", "pp", "dp"})
            for (const auto& [name, v] : s.critical_path)
                if (name == k)
                    row.push_back(s.step_seconds > 0 ? pct(v / s.step_seconds) : "-");
        steps.add_row(std::move(row));
    }
    out += steps.render();
    out += fmt::format("\nsimulated total {} ms over {} steps, mean {} ms per step\n",
                       ms(r.total_seconds), r.steps.size(),
                       ms(r.steps.empty() ? 0.0 : r.total_seconds / r.steps.size()));
    if (!r.steps.empty()) {
        // The slowest ranks of the slowest step.
        const auto* worst = &r.steps.front();
        for (const auto& s : r.steps)
            if (s.step_seconds > worst->step_seconds)
                worst = &s;
        out += fmt::format("\nslowest ranks in step {} (simulated; TP peers identical):\n",
                           worst->step);
        table slow({"rank", "tp cp pp dp", "busy (ms)", "attention", "x mean", "why"},
                   {table::align::right, table::align::left, table::align::right,
                    table::align::right, table::align::right, table::align::left});
        for (const auto& w : worst->slowest)
            slow.add_row(
                {std::to_string(w.rank),
                 fmt::format("{} {} {} {}", w.where.tp, w.where.cp, w.where.pp, w.where.dp),
                 ms(w.busy_seconds),
                 w.busy_seconds > 0 ? pct(w.attention_seconds / w.busy_seconds) : "-",
                 fmt::format("{:.3f}", w.busy_over_mean), w.why});
        out += slow.render();
    }
    return out;
}

} // namespace wlb::reports
