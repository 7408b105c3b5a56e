// What `wlbtune data` measures: a pass over a document stream that summarizes the source
// documents' lengths (before the context policy) and records what the policy did.
#pragma once

#include "base/provenance.hpp"
#include "tuner/data/document_stream.hpp"
#include "tuner/data/length_summary.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace wlb::tuner {

struct data_profile {
    std::string description; ///< the stream's describe()
    length_summary source;   ///< source documents in dataloader order, before the policy
                             ///< (empty documents excluded)
    stream_stats stream;     ///< what the order, the policy and the limits did
};

/// `wlbtune data`'s options.
struct data_request {
    std::string data = "default"; ///< a document source spec (docs/data.md)
    std::string context = "128k";
    std::string policy = "truncate";
    std::optional<std::uint64_t> shuffle_seed;
    std::int64_t max_documents = 0;
    std::string max_tokens = "0"; ///< "0": no limit
};

/// Profiles the stream `request` describes from its start; `inputs` gets the files it reads.
/// Throws wlb::input_error naming the option or the file and place.
data_profile profile_data(const data_request& request, std::vector<wlb::input_identity>& inputs);

/// Drains `stream` from its current position (rewind() first for the whole stream). Holds one
/// 8-byte length per source document while summarizing.
data_profile profile_stream(document_stream& stream);

} // namespace wlb::tuner
