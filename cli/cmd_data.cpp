#include "base/atomic_file.hpp"
#include "base/token_count.hpp"
#include "cli/command.hpp"
#include "reports/data_report.hpp"
#include "tuner/data/data_profile.hpp"
#include "tuner/data/open_document_source.hpp"

#include <fmt/format.h>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

namespace wlb::cli {
namespace {

struct data_options {
    std::string data = "default";
    std::string context = "128k";
    std::string policy = "truncate";
    std::optional<std::uint64_t> shuffle_seed;
    std::int64_t max_documents = 0;
    std::string max_tokens = "0";
    std::string json_path;
};

void run_data(const data_options& o) {
    tuner::stream_options so;
    so.context_tokens = wlb::parse_token_count(o.context, "--context");
    so.policy = tuner::parse_context_policy(o.policy);
    so.shuffle_seed = o.shuffle_seed;
    so.max_documents = o.max_documents;
    so.max_tokens = o.max_tokens == "0" ? 0 : wlb::parse_token_count(o.max_tokens, "--max-tokens");
    const auto spec = tuner::parse_source_spec(o.data);
    auto inputs = tuner::source_inputs(spec);
    tuner::document_stream stream(tuner::open_document_source(o.data), so);
    const auto profile = tuner::profile_stream(stream);
    if (o.json_path != "-") // with --json - stdout carries the JSON alone
        fmt::print("{}", reports::data_text(profile));
    if (!o.json_path.empty())
        wlb::write_file_atomic(o.json_path,
                               reports::data_json(profile, o.data, inputs).dump(2) + "\n");
}

} // namespace

registered_command register_data(CLI::App& app, error_sink& sink) {
    auto o = std::make_shared<data_options>();
    auto* sub = app.add_subcommand(
        "data", "Document-length statistics of a dataset: percentiles, long-document share, a "
                "log2 histogram and what the context policy does");
    sub->add_option("-d,--data", o->data,
                    std::string("Document source:\n") + std::string(tuner::source_spec_help()))
        ->capture_default_str();
    sub->add_option("-c,--context", o->context,
                    "Context window in tokens (128k = 131072); longer documents are truncated "
                    "or split")
        ->capture_default_str();
    sub->add_option("--policy", o->policy,
                    "What happens to a document longer than the context: truncate (keep the "
                    "first context tokens) or split (into context-sized pieces)")
        ->capture_default_str()
        ->check(CLI::IsMember({"truncate", "split"}));
    sub->add_option("--shuffle", o->shuffle_seed,
                    "Shuffle the dataloader order with this seed (loads every length: 4 bytes "
                    "per document); default: the stored order");
    sub->add_option("--max-documents", o->max_documents,
                    "Read at most this many source documents (0: all)")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    sub->add_option("--max-tokens", o->max_tokens,
                    "Stop once this many tokens were emitted, between documents (0: no limit; "
                    "accepts 1m, 500k)")
        ->capture_default_str();
    sub->add_option("--json", o->json_path,
                    "Also write the report as versioned JSON (wlbtune.data/1) to this file "
                    "('-' for stdout)");
    sub->footer("Examples:\n"
                "  wlbtune data                                   (the embedded workload)\n"
                "  wlbtune data --data synthetic:wlbllm?n=200000&seed=3 --policy split\n"
                "  wlbtune data --data idx:/data/pile_text_document.idx --json data.json");
    return {sub, [o, &sink] {
                sink.json_path = o->json_path == "-" ? "" : o->json_path;
                sink.json_stdout = o->json_path == "-";
                run_data(*o);
            }};
}

} // namespace wlb::cli
