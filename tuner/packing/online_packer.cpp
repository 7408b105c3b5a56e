#include "tuner/packing/online_packer.hpp"

#include "base/error.hpp"
#include "tuner/packing/packing_common.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace wlb::tuner {
namespace {

// Thrown by the pull when the documents fed run out before close(): the attempt is dropped.
struct starved {};

void check_fed(std::int64_t id, std::int64_t tokens, std::int64_t context_tokens) {
    if (id < 0)
        throw input_error(fmt::format("document id must be >= 0, found {}", id));
    check_document({id, tokens, 0}, context_tokens);
}

} // namespace

online_packer::online_packer(const packing_config& config, const cost_model& costs)
    : m_packer(make_packer(config, costs)) {}

void online_packer::feed(std::span<const std::int64_t> ids, std::span<const std::int64_t> tokens) {
    if (ids.size() != tokens.size())
        throw input_error(
            fmt::format("feed: {} document ids but {} lengths", ids.size(), tokens.size()));
    if (m_closed)
        throw input_error("feed: the packer was closed (no documents may follow the end of the "
                          "stream)");
    const auto context = config().context_tokens;
    for (std::size_t i = 0; i < ids.size(); ++i)
        check_fed(ids[i], tokens[i], context);
    m_fed.reserve(m_fed.size() + ids.size());
    for (std::size_t i = 0; i < ids.size(); ++i) {
        m_fed.push_back({ids[i], tokens[i], 0});
        m_fed_tokens += tokens[i];
    }
}

std::optional<runtime::global_batch> online_packer::next() {
    if (m_finished || (!m_closed && m_fed_tokens < m_packer->min_draw_tokens()))
        return std::nullopt;
    if (!m_before_step) {
        m_before_step = m_packer->clone();
        m_step_head = m_head;
    }
    const bool closed = m_closed;
    const document_pull pull = [&](std::int64_t step) -> std::optional<runtime::document> {
        if (m_head < m_fed.size()) {
            auto d = m_fed[m_head++];
            m_fed_tokens -= d.tokens;
            d.drawn_step = step;
            return d;
        }
        if (closed)
            return std::nullopt;
        throw starved{};
    };
    std::optional<runtime::global_batch> batch;
    try {
        batch = m_packer->pack(m_step, pull);
    } catch (const starved&) {
        return std::nullopt; // the packer keeps the step's intake so far
    }
    m_before_step.reset();
    // Drop the drawn documents once they are most of the buffer (amortized O(1) per document).
    if (m_head >= 1024 && m_head * 2 >= m_fed.size()) {
        m_fed.erase(m_fed.begin(), m_fed.begin() + static_cast<std::ptrdiff_t>(m_head));
        m_head = 0;
    }
    if (!batch) {
        m_finished = true;
        return std::nullopt;
    }
    ++m_step;
    return batch;
}

online_packer_state online_packer::save_state() const {
    // A step in progress: as it stood before its intake, its drawn documents fed again.
    const auto head = m_before_step ? m_step_head : m_head;
    return {config(), m_step, m_closed,
            std::vector<runtime::document>(m_fed.begin() + static_cast<std::ptrdiff_t>(head),
                                           m_fed.end()),
            (m_before_step ? m_before_step : m_packer)->save_state()};
}

void online_packer::load_state(const online_packer_state& s) {
    const auto mine = to_json(config());
    const auto theirs = to_json(s.config);
    if (mine != theirs)
        throw input_error(fmt::format("packer state: saved by a packer of {}, this packer is of {}",
                                      theirs.dump(), mine.dump()));
    if (s.next_step < 0)
        throw input_error(
            fmt::format("packer state: next_step must be >= 0, found {}", s.next_step));
    for (const auto& d : s.fed) {
        try {
            check_fed(d.id, d.tokens, s.config.context_tokens);
        } catch (const input_error& e) {
            throw input_error(fmt::format("packer state: fed: {}", e.what()));
        }
    }
    auto restored = m_packer->clone();
    restored->load_state(s.packer); // checks s.packer against the configuration
    m_packer = std::move(restored);
    m_before_step.reset();
    m_fed = s.fed;
    m_head = 0;
    m_fed_tokens = 0;
    for (const auto& d : m_fed)
        m_fed_tokens += d.tokens;
    m_step = s.next_step;
    m_closed = s.closed;
    m_finished = false;
}

nlohmann::json to_json(const online_packer_state& s) {
    auto fed = nlohmann::json::array();
    for (const auto& d : s.fed)
        fed.push_back({d.id, d.tokens});
    return {{"schema", online_packer_schema}, {"packing", to_json(s.config)},
            {"next_step", s.next_step},       {"closed", s.closed},
            {"fed", std::move(fed)},          {"packer", to_json(s.packer)}};
}

online_packer_state online_packer_state_from_json(const nlohmann::json& j, std::string_view where) {
    if (!j.is_object())
        throw input_error(where, "$: a packer state must be a JSON object");
    auto field = [&](const char* key) -> const nlohmann::json& {
        auto it = j.find(key);
        if (it == j.end())
            throw input_error(where, fmt::format("$.{} is missing", key));
        return *it;
    };
    const auto& schema = field("schema");
    if (!schema.is_string() || schema.get<std::string>() != online_packer_schema)
        throw input_error(where, fmt::format("$.schema: expected \"{}\", found {}",
                                             online_packer_schema, schema.dump()));
    online_packer_state s;
    s.config = packing_config_from_json(field("packing"), fmt::format("{}: $.packing", where));
    const auto& step = field("next_step");
    if (!step.is_number_integer())
        throw input_error(where,
                          fmt::format("$.next_step: expected an integer, found {}", step.dump()));
    s.next_step = step.get<std::int64_t>();
    const auto& closed = field("closed");
    if (!closed.is_boolean())
        throw input_error(where,
                          fmt::format("$.closed: expected true or false, found {}", closed.dump()));
    s.closed = closed.get<bool>();
    const auto& fed = field("fed");
    if (!fed.is_array())
        throw input_error(where, "$.fed: expected an array of [id, tokens]");
    s.fed.reserve(fed.size());
    for (std::size_t i = 0; i < fed.size(); ++i) {
        const auto& d = fed[i];
        if (!d.is_array() || d.size() != 2 || !d[0].is_number_integer() ||
            !d[1].is_number_integer())
            throw input_error(where, fmt::format("$.fed[{}]: expected [id, tokens] (integers), "
                                                 "found {}",
                                                 i, d.dump()));
        s.fed.push_back({d[0].get<std::int64_t>(), d[1].get<std::int64_t>(), 0});
    }
    s.packer = packer_state_from_json(field("packer"), fmt::format("{}: $.packer", where));
    return s;
}

} // namespace wlb::tuner
