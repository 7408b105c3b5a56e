// wlbtune data: document-length statistics of a dataset (tuner/data/data_profile.hpp).
#include "cli/command.hpp"
#include "reports/data_report.hpp"
#include "tuner/data/open_document_source.hpp"

#include <memory>

namespace wlb::cli {
namespace {

struct data_options {
    tuner::data_request request;
    std::string json;
};

void run_data(const data_options& o, const command_output& out) {
    std::vector<wlb::input_identity> inputs;
    const auto profile = tuner::profile_data(o.request, inputs);
    out.text(reports::data_text(profile));
    out.json(reports::data_json(profile, o.request.data, inputs));
}

} // namespace

registered_command register_data(CLI::App& app, command_output& out) {
    auto o = std::make_shared<data_options>();
    auto& r = o->request;
    auto* sub = app.add_subcommand(
        "data", "Document-length statistics of a dataset: percentiles, long-document share, a "
                "log2 histogram and what the context policy does");
    sub->add_option("-d,--data", r.data,
                    std::string("Document source:\n") + std::string(tuner::source_spec_help()));
    sub->add_option("-c,--context", r.context,
                    "Context window in tokens (128k = 131072); longer documents are truncated "
                    "or split");
    sub->add_option("--policy", r.policy,
                    "What happens to a document longer than the context: truncate (keep the "
                    "first context tokens) or split (into context-sized pieces)")
        ->check(CLI::IsMember({"truncate", "split"}));
    sub->add_option("--shuffle", r.shuffle_seed,
                    "Shuffle the dataloader order with this seed (loads every length: 4 bytes "
                    "per document); default: the stored order");
    sub->add_option("--max-documents", r.max_documents,
                    "Read at most this many source documents (0: all)")
        ->check(CLI::NonNegativeNumber);
    sub->add_option("--max-tokens", r.max_tokens,
                    "Stop once this many tokens were emitted, between documents (0: no limit; "
                    "accepts 1m, 500k)");
    add_json_option(*sub, o->json, "wlbtune.data/1");
    sub->footer("Examples:\n"
                "  wlbtune data                                   (the embedded workload)\n"
                "  wlbtune data --data 'synthetic:wlbllm?n=200000&seed=3' --policy split\n"
                "  wlbtune data --data idx:/data/pile_text_document.idx --json data.json");
    return {sub, [o, &out] {
                out.set_json(o->json);
                run_data(*o, out);
            }};
}

} // namespace wlb::cli
