// One factory for every document source: the --data argument of wlbtune's commands.
//
//   default | embedded       the embedded WLB-LLM-shaped workload
//   (tuner/data/embedded_workload.hpp) synthetic:KIND?k=v&...   lognormal, mixture, wlbllm
//   (tuner/data/synthetic_source.hpp) idx:PATH                 Megatron-LM indexed dataset index
//   (tuner/data/megatron_idx_source.hpp) json:PATH                JSON array of lengths
//   jsonl:PATH[#KEY]         JSON Lines, the length under KEY (default "length")
//   csv:PATH[#COLUMN]        CSV with a header, COLUMN by name or 0-based index
//   text:PATH                one length per line
//   PATH[#FIELD]             by extension: .idx .json .jsonl .csv .txt
// The last '#' of a jsonl/csv spec separates the key or column. Anything else is a
// wlb::input_error listing these forms.
#pragma once

#include "base/provenance.hpp"
#include "tuner/data/document_source.hpp"

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace wlb::tuner {

struct source_options {
    std::string jsonl_key = "length";  ///< used when a jsonl spec names no key
    std::string csv_column = "length"; ///< used when a csv spec names no column
};

/// A spec taken apart. kind: "embedded", "synthetic", "idx", "json", "jsonl", "csv", "text".
struct source_spec {
    std::string kind;
    std::string path;  ///< file sources only
    std::string field; ///< jsonl key or csv column ("" = from source_options)
    std::string query; ///< synthetic: the part after "synthetic:"
};

/// Parses a spec (no file is opened). Throws wlb::input_error listing the accepted forms.
source_spec parse_source_spec(std::string_view spec);

/// Opens the source a spec names.
std::unique_ptr<document_source> open_document_source(std::string_view spec,
                                                      const source_options& options = {});

/// The identity (path, size, hash) of the files a spec reads, for report_header(); empty for
/// the embedded and synthetic sources.
std::vector<wlb::input_identity> source_inputs(const source_spec& spec);

/// The accepted forms, one per line, for help texts and errors.
std::string_view source_spec_help() noexcept;

} // namespace wlb::tuner
