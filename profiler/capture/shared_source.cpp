#include "profiler/capture/shared_source.hpp"

#include "base/error.hpp"

#include <map>
#include <mutex>
#include <set>
#include <unordered_map>
#include <utility>

namespace wlb::profiler {

namespace {

constexpr int rank_shift = 40;
constexpr std::uint64_t local_mask = (std::uint64_t{1} << rank_shift) - 1;

std::uint64_t tagged(int rank, std::uint64_t id) {
    WLB_EXPECTS(id <= local_mask, "capture context id {} too large to share", id);
    return (static_cast<std::uint64_t>(rank) + 1) << rank_shift | id;
}

int rank_of_tag(std::uint64_t tag) {
    return static_cast<int>(tag >> rank_shift) - 1;
}

} // namespace

struct shared_activity_source::state {
    std::unique_ptr<activity_source> backend;
    std::mutex mu;
    bool started = false;
    bool stopped = false;
    int first_rank = -1;                           ///< the rank of the first view
    std::map<int, capture_batch> shares;           ///< per rank, what its next drain returns
    std::unordered_map<std::uint32_t, int> owners; ///< stream id -> rank that registered it

    /// Lock held: takes everything the backend has and deals it out to the ranks.
    void deal() {
        capture_batch all = backend->drain();
        std::unordered_map<std::uint32_t, int> by_correlation;
        for (auto& l : all.links) {
            const int r = rank_of_tag(l.context_id);
            by_correlation[l.correlation_id] = r;
            shares[r].links.push_back({l.correlation_id, l.context_id & local_mask});
        }
        for (auto& a : all.activities) {
            int r = first_rank;
            if (auto it = by_correlation.find(a.correlation_id);
                a.correlation_id != 0 && it != by_correlation.end())
                r = it->second;
            else if (auto s = owners.find(a.stream); s != owners.end())
                r = s->second;
            shares[r].activities.push_back(std::move(a));
        }
        auto& losses = shares[first_rank].losses;
        losses.dropped_records += all.losses.dropped_records;
        losses.buffers_refused += all.losses.buffers_refused;
        losses.unsupported_records += all.losses.unsupported_records;
        losses.warnings.insert(losses.warnings.end(), all.losses.warnings.begin(),
                               all.losses.warnings.end());
    }
};

namespace {

class source_view final : public activity_source {
public:
    source_view(std::shared_ptr<shared_activity_source::state> s, int rank)
        : m_state(std::move(s)), m_rank(rank) {}

    std::string_view name() const noexcept override { return m_state->backend->name(); }
    void start() override {
        std::lock_guard lock(m_state->mu);
        if (!m_state->started) {
            m_state->backend->start();
            m_state->started = true;
        }
    }
    void stop() override {
        std::lock_guard lock(m_state->mu);
        if (m_state->started && !m_state->stopped) {
            m_state->backend->stop();
            m_state->stopped = true;
        }
    }
    void flush() override {
        std::lock_guard lock(m_state->mu);
        m_state->backend->flush();
    }
    capture_batch drain() override {
        std::lock_guard lock(m_state->mu);
        m_state->deal();
        return std::exchange(m_state->shares[m_rank], capture_batch{});
    }
    void push_context(std::uint64_t context_id) override {
        m_state->backend->push_context(tagged(m_rank, context_id));
    }
    void pop_context() override { m_state->backend->pop_context(); }
    std::int64_t now_ns() override { return m_state->backend->now_ns(); }
    std::uint32_t stream_id(void* stream) override {
        const auto id = m_state->backend->stream_id(stream);
        std::lock_guard lock(m_state->mu);
        m_state->owners[id] = m_rank;
        return id;
    }

private:
    std::shared_ptr<shared_activity_source::state> m_state;
    int m_rank;
};

} // namespace

shared_activity_source::shared_activity_source(std::unique_ptr<activity_source> backend)
    : m_state(std::make_shared<state>()) {
    WLB_EXPECTS(backend != nullptr, "a shared capture source needs a backend");
    m_state->backend = std::move(backend);
}

shared_activity_source::~shared_activity_source() = default;

std::unique_ptr<activity_source> shared_activity_source::view(int rank) {
    WLB_EXPECTS(rank >= 0, "capture view of rank {}", rank);
    std::lock_guard lock(m_state->mu);
    WLB_EXPECTS(!m_state->shares.contains(rank), "a second capture view of rank {}", rank);
    m_state->shares[rank];
    if (m_state->first_rank < 0)
        m_state->first_rank = rank;
    return std::make_unique<source_view>(m_state, rank);
}

} // namespace wlb::profiler
