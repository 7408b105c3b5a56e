#include "tuner/data/data_profile.hpp"

namespace wlb::tuner {

data_profile profile_stream(document_stream& stream) {
    data_profile p;
    p.description = stream.describe();
    std::vector<std::int64_t> lengths;
    if (auto hint = stream.size_hint())
        lengths.reserve(static_cast<std::size_t>(*hint));
    while (auto item = stream.next_item(0))
        if (item->piece == 0)
            lengths.push_back(item->source_tokens);
    p.stream = stream.stats();
    p.source = summarize_lengths(std::move(lengths), stream.options().context_tokens);
    return p;
}

} // namespace wlb::tuner
