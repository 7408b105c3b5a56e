#include "tuner/data/document_stream.hpp"

#include "base/error.hpp"
#include "tuner/data/open_document_source.hpp"
#include "tuner/data/synthetic_source.hpp"

#include <fmt/format.h>
#include <random>
#include <utility>

namespace wlb::tuner {

context_policy parse_context_policy(std::string_view text) {
    if (text == "truncate")
        return context_policy::truncate;
    if (text == "split")
        return context_policy::split;
    throw input_error(fmt::format("context policy \"{}\": expected truncate or split", text));
}

std::string_view to_string(context_policy p) noexcept {
    return p == context_policy::split ? "split" : "truncate";
}

document_stream::document_stream(std::unique_ptr<document_source> source, stream_options options)
    : m_source(std::move(source)), m_options(options) {
    WLB_EXPECTS(m_source != nullptr, "document_stream needs a source");
    if (m_options.context_tokens <= 0)
        throw input_error(
            fmt::format("context window {} must be positive", m_options.context_tokens));
    if (m_options.max_documents < 0 || m_options.max_tokens < 0)
        throw input_error("document and token limits must be >= 0 (0: no limit)");
    if (m_options.shuffle_seed) {
        // Load every length (4 bytes each), then Fisher-Yates from the back.
        if (auto hint = m_source->size_hint())
            m_shuffled.reserve(static_cast<std::size_t>(*hint));
        while (auto length = m_source->next())
            m_shuffled.push_back(static_cast<std::uint32_t>(*length));
        std::mt19937_64 engine(*m_options.shuffle_seed);
        for (std::size_t i = m_shuffled.size(); i > 1; --i) {
            const auto j = static_cast<std::size_t>(uniform_below(engine, i));
            std::swap(m_shuffled[i - 1], m_shuffled[j]);
        }
    }
}

std::optional<std::int64_t> document_stream::next_source_length() {
    if (m_options.max_documents > 0 && m_stats.source_documents >= m_options.max_documents)
        return std::nullopt;
    if (m_options.max_tokens > 0 && m_stats.tokens >= m_options.max_tokens)
        return std::nullopt;
    if (m_options.shuffle_seed) {
        if (m_shuffled_pos >= m_shuffled.size())
            return std::nullopt;
        return m_shuffled[m_shuffled_pos++];
    }
    return m_source->next();
}

std::optional<stream_item> document_stream::next_item(std::int64_t drawn_step) {
    const std::int64_t context = m_options.context_tokens;
    stream_item item;
    if (m_pending_tokens > 0) {
        // the next piece of a split document
        item.source_index = m_pending_source_index;
        item.source_tokens = m_pending_source_tokens;
        item.piece = m_pending_piece++;
        item.doc.tokens = std::min(m_pending_tokens, context);
        m_pending_tokens -= item.doc.tokens;
    } else {
        std::optional<std::int64_t> length;
        for (;;) {
            length = next_source_length();
            if (!length) {
                // A run on no documents would pack 0 steps and report success.
                if (m_stats.source_documents == 0)
                    throw input_error(m_source->describe(), "holds no documents");
                return std::nullopt;
            }
            item.source_index = m_stats.source_documents++;
            m_stats.source_tokens += *length;
            if (*length > 0)
                break;
            ++m_stats.empty_documents;
        }
        item.source_tokens = *length;
        item.doc.tokens = *length;
        if (*length > context) {
            ++m_stats.over_context_documents;
            if (m_options.policy == context_policy::truncate) {
                ++m_stats.truncated_documents;
                m_stats.dropped_tokens += *length - context;
                item.doc.tokens = context;
            } else {
                ++m_stats.split_documents;
                m_stats.split_pieces += (*length + context - 1) / context;
                item.doc.tokens = context;
                m_pending_tokens = *length - context;
                m_pending_piece = 1;
                m_pending_source_index = item.source_index;
                m_pending_source_tokens = *length;
            }
        }
    }
    item.doc.id = m_stats.documents++;
    item.doc.drawn_step = drawn_step;
    m_stats.tokens += item.doc.tokens;
    return item;
}

std::optional<runtime::document> document_stream::next(std::int64_t drawn_step) {
    if (auto item = next_item(drawn_step))
        return item->doc;
    return std::nullopt;
}

std::optional<std::int64_t> document_stream::size_hint() const {
    std::optional<std::int64_t> n =
        m_options.shuffle_seed
            ? std::optional<std::int64_t>(static_cast<std::int64_t>(m_shuffled.size()))
            : m_source->size_hint();
    if (n && m_options.max_documents > 0)
        n = std::min(*n, m_options.max_documents);
    return n;
}

std::string document_stream::describe() const {
    std::string order = m_options.shuffle_seed
                            ? fmt::format("shuffled (seed {})", *m_options.shuffle_seed)
                            : std::string("as stored");
    return fmt::format("{}, order {}, context {} ({})", m_source->describe(), order,
                       m_options.context_tokens, to_string(m_options.policy));
}

void document_stream::rewind() {
    if (!m_options.shuffle_seed)
        m_source->rewind();
    m_shuffled_pos = 0;
    m_stats = {};
    m_pending_tokens = 0;
    m_pending_piece = 0;
}

document_stream open_document_stream(std::string_view spec, const stream_options& options) {
    return document_stream(open_document_source(spec), options);
}

} // namespace wlb::tuner
