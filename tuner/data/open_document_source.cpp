#include "tuner/data/open_document_source.hpp"

#include "base/error.hpp"
#include "tuner/data/embedded_workload.hpp"
#include "tuner/data/megatron_idx_source.hpp"
#include "tuner/data/synthetic_source.hpp"
#include "tuner/data/text_sources.hpp"

#include <array>
#include <fmt/format.h>

namespace wlb::tuner {
namespace {

constexpr std::string_view help_text =
    "  default | embedded       the embedded WLB-LLM-shaped workload (32,768 documents)\n"
    "  synthetic:lognormal?mu=8&sigma=1&n=100000&seed=1&max=131072\n"
    "  synthetic:mixture?mu=7.8&sigma=1&weight=0.01&xmin=32768&alpha=1&n=100000&seed=1\n"
    "  synthetic:wlbllm?n=99519&seed=1\n"
    "  idx:PATH                 Megatron-LM indexed dataset index (.idx)\n"
    "  json:PATH                JSON array of lengths\n"
    "  jsonl:PATH[#KEY]         JSON Lines, the length under KEY (default \"length\")\n"
    "  csv:PATH[#COLUMN]        CSV with a header; COLUMN is a name or a 0-based index\n"
    "  text:PATH                one length per line (# comments)\n"
    "  PATH[#FIELD]             by extension: .idx .json .jsonl .csv .txt\n";

bool ends_with(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Splits "PATH#FIELD" at the last '#' for the kinds that take a field.
void split_field(source_spec& s, std::string_view rest) {
    if (s.kind == "jsonl" || s.kind == "csv") {
        if (auto hash = rest.rfind('#'); hash != std::string_view::npos) {
            s.path = std::string(rest.substr(0, hash));
            s.field = std::string(rest.substr(hash + 1));
            return;
        }
    }
    s.path = std::string(rest);
}

} // namespace

std::string_view source_spec_help() noexcept {
    return help_text;
}

source_spec parse_source_spec(std::string_view spec) {
    source_spec s;
    if (spec == "default" || spec == "embedded") {
        s.kind = "embedded";
        return s;
    }
    constexpr std::array<std::string_view, 6> prefixed = {"synthetic", "idx", "json",
                                                          "jsonl",     "csv", "text"};
    for (auto kind : prefixed) {
        if (spec.size() > kind.size() && spec.substr(0, kind.size()) == kind &&
            spec[kind.size()] == ':') {
            s.kind = std::string(kind);
            auto rest = spec.substr(kind.size() + 1);
            if (s.kind == "synthetic")
                s.query = std::string(rest);
            else
                split_field(s, rest);
            if (s.kind != "synthetic" && s.path.empty())
                throw input_error(fmt::format("--data \"{}\": {} needs a path", spec, kind));
            return s;
        }
    }
    // A bare path: the extension (before any #FIELD) decides.
    std::string_view path = spec;
    if (auto hash = spec.rfind('#'); hash != std::string_view::npos)
        path = spec.substr(0, hash);
    constexpr std::array<std::pair<std::string_view, std::string_view>, 5> by_extension = {
        {{".idx", "idx"},
         {".jsonl", "jsonl"},
         {".json", "json"},
         {".csv", "csv"},
         {".txt", "text"}}};
    for (auto [ext, kind] : by_extension) {
        if (ends_with(path, ext)) {
            s.kind = std::string(kind);
            split_field(s, spec);
            if (s.path != path) // a '#' on a kind without a field is part of the path
                s.path = std::string(spec), s.field.clear();
            return s;
        }
    }
    throw input_error(
        fmt::format("unknown data source \"{}\"; accepted forms:\n{}", spec, help_text));
}

std::unique_ptr<document_source> open_document_source(std::string_view spec,
                                                      const source_options& options) {
    const source_spec s = parse_source_spec(spec);
    if (s.kind == "embedded") {
        const auto lengths = embedded_workload_lengths();
        return std::make_unique<vector_source>(
            std::vector<std::int64_t>(lengths.begin(), lengths.end()),
            fmt::format("embedded ({})", embedded_workload_origin));
    }
    if (s.kind == "synthetic")
        return std::make_unique<synthetic_source>(parse_synthetic_spec(s.query));
    if (s.kind == "idx")
        return std::make_unique<megatron_idx_source>(s.path);
    if (s.kind == "json")
        return open_json_lengths(s.path);
    if (s.kind == "jsonl")
        return open_jsonl_lengths(s.path, s.field.empty() ? options.jsonl_key : s.field);
    if (s.kind == "csv")
        return open_csv_lengths(s.path, s.field.empty() ? options.csv_column : s.field);
    if (s.kind == "text")
        return open_text_lengths(s.path);
    throw internal_error(fmt::format("source kind \"{}\" has no opener", s.kind));
}

std::vector<wlb::input_identity> source_inputs(const source_spec& spec) {
    if (spec.path.empty())
        return {};
    return {wlb::identify_file(spec.path)};
}

} // namespace wlb::tuner
