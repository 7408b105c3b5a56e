#include "tuner/data/data_profile.hpp"

#include "base/token_count.hpp"
#include "tuner/data/open_document_source.hpp"

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

data_profile profile_data(const data_request& r, std::vector<wlb::input_identity>& inputs) {
    stream_options so;
    so.context_tokens = wlb::parse_token_count(r.context, "--context");
    so.policy = parse_context_policy(r.policy);
    so.shuffle_seed = r.shuffle_seed;
    so.max_documents = r.max_documents;
    so.max_tokens = r.max_tokens == "0" ? 0 : wlb::parse_token_count(r.max_tokens, "--max-tokens");
    inputs = source_inputs(parse_source_spec(r.data));
    document_stream stream(open_document_source(r.data), so);
    return profile_stream(stream);
}

} // namespace wlb::tuner
