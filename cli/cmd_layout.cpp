// wlbtune layout: the rank <-> (tp, cp, pp, dp) mapping and every group of a layout.
#include "base/error.hpp"
#include "cli/command.hpp"
#include "reports/layout_report.hpp"
#include "runtime/parallel/layout.hpp"

#include <memory>

namespace wlb::cli {
namespace {

struct layout_options {
    std::string layout = "tp=8,cp=2,pp=4,dp=1";
    std::string order = std::string(runtime::layout::default_order);
    int world_size = 0;
    bool json = false;
};

void run_layout(const layout_options& o, const command_output& out) {
    const auto l = runtime::layout::parse(o.layout, o.order);
    if (o.world_size != 0 && o.world_size != l.world_size())
        throw input_error(
            fmt::format("layout {} has world size {} (tp*cp*pp*dp) but --world-size is {}",
                        l.spec(), l.world_size(), o.world_size));
    out.json(reports::layout_json(l));
    out.text(reports::layout_text(l));
}

} // namespace

registered_command register_layout(CLI::App& app, command_output& out) {
    auto o = std::make_shared<layout_options>();
    auto* sub = app.add_subcommand(
        "layout", "Print the rank <-> (tp, cp, pp, dp) mapping and every TP/CP/PP/DP group");
    sub->add_option("-l,--layout", o->layout,
                    "Parallel degrees, e.g. tp=8,cp=2,pp=4,dp=1[,vpp=2]; a missing axis is 1");
    sub->add_option("--order", o->order,
                    "Axis order, innermost first: tp-cp-pp-dp (Llama 3, WLB-LLM) or tp-cp-dp-pp "
                    "(Megatron); any permutation");
    sub->add_option("--world-size", o->world_size,
                    "Expected number of ranks; the layout is rejected if it differs");
    sub->add_flag("--json", o->json, "Print versioned JSON (wlbtune.layout/1) instead of tables");
    sub->footer("Example: wlbtune layout --layout tp=2,cp=2,pp=2,dp=2 --order tp-cp-dp-pp");
    return {sub, [o, &out] {
                out.set_json_stdout(o->json);
                run_layout(*o, out);
            }};
}

} // namespace wlb::cli
