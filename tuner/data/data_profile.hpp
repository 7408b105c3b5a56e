// What `wlbtune data` measures: a pass over a document stream that summarizes the source
// documents' lengths (before the context policy) and records what the policy did.
#pragma once

#include "tuner/data/document_stream.hpp"
#include "tuner/data/length_summary.hpp"

#include <string>

namespace wlb::tuner {

struct data_profile {
    std::string description; ///< the stream's describe()
    length_summary source;   ///< source documents in dataloader order, before the policy
                             ///< (empty documents excluded)
    stream_stats stream;     ///< what the order, the policy and the limits did
};

/// Drains `stream` from its current position (rewind() first for the whole stream). Holds one
/// 8-byte length per source document while summarizing.
data_profile profile_stream(document_stream& stream);

} // namespace wlb::tuner
