#include "runtime/comm/fake_communicator.hpp"

#include "base/error.hpp"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <map>
#include <mutex>
#include <thread>
#include <tuple>
#include <vector>

namespace wlb::runtime {

namespace {

using bytes = std::vector<std::byte>;

struct op_state {
    std::string op;
    std::vector<bytes> contributions; // one per member
    std::vector<bool> arrived;
    int arrived_count = 0;
    int departed_count = 0;
};

/// The shared state of one group.
struct hub {
    group_desc group;
    std::map<std::uint64_t, op_state> ops; // by the group's collective sequence number
    std::map<std::tuple<int, int, int>, std::deque<bytes>> mailboxes; // (src, dst, tag)
    std::map<std::pair<std::uint64_t, std::vector<int>>, std::shared_ptr<hub>> children;
};

} // namespace

struct fake_world::state {
    std::mutex mutex;
    std::condition_variable changed;
    bool aborted = false;
    std::string message;
    double watchdog_seconds = default_watchdog_seconds;
    std::shared_ptr<hub> world;
};

namespace {

using state = fake_world::state;

template <typename T>
void sum_blocks(const std::vector<bytes>& parts, std::size_t offset_bytes, std::size_t count,
                void* out) {
    auto* dst = static_cast<T*>(out);
    for (std::size_t i = 0; i < count; ++i) {
        T acc = 0;
        for (const auto& p : parts) {
            T v;
            std::memcpy(&v, p.data() + offset_bytes + i * sizeof(T), sizeof(T));
            acc += v;
        }
        dst[i] = acc;
    }
}

void sum_blocks(element_type type, const std::vector<bytes>& parts, std::size_t offset_bytes,
                std::size_t count, void* out) {
    if (type == element_type::f32)
        sum_blocks<float>(parts, offset_bytes, count, out);
    else
        sum_blocks<double>(parts, offset_bytes, count, out);
}

class fake_communicator final : public communicator {
public:
    fake_communicator(std::shared_ptr<state> world, std::shared_ptr<hub> h, int rank)
        : m_world(std::move(world)), m_hub(std::move(h)), m_rank(rank) {}

    int rank() const noexcept override { return m_rank; }
    int size() const noexcept override { return static_cast<int>(m_hub->group.world_ranks.size()); }
    const group_desc& group() const noexcept override { return m_hub->group; }

    void barrier() override {
        collective("barrier", nullptr, 0, [](const std::vector<bytes>&) {});
    }

    std::unique_ptr<communicator> split(const group_desc& g) override {
        std::unique_lock lock(m_world->mutex);
        const int me = world_rank();
        auto pos = std::find(g.world_ranks.begin(), g.world_ranks.end(), me);
        WLB_EXPECTS(pos != g.world_ranks.end(), "split: world rank {} is not in its {}", me,
                    g.describe());
        for (int r : g.world_ranks)
            WLB_EXPECTS(std::find(group().world_ranks.begin(), group().world_ranks.end(), r) !=
                            group().world_ranks.end(),
                        "split: world rank {} of {} is not in {}", r, g.describe(),
                        group().describe());
        auto& child = m_hub->children[{m_split_seq++, g.world_ranks}];
        if (!child) {
            child = std::make_shared<hub>();
            child->group = g;
        }
        return std::make_unique<fake_communicator>(m_world, child,
                                                   static_cast<int>(pos - g.world_ranks.begin()));
    }

    [[noreturn]] void abort(const std::string& message) override {
        std::unique_lock lock(m_world->mutex);
        abort_locked(message);
    }

protected:
    void do_all_gather(const void* send, void* recv, std::size_t count,
                       element_type type) override {
        const std::size_t block = count * element_bytes(type);
        collective("all_gather", send, block, [&](const std::vector<bytes>& parts) {
            for (std::size_t m = 0; m < parts.size(); ++m)
                if (block > 0)
                    std::memcpy(static_cast<std::byte*>(recv) + m * block, parts[m].data(), block);
        });
    }

    void do_reduce_scatter(const void* send, void* recv, std::size_t count,
                           element_type type) override {
        const std::size_t block = count * element_bytes(type);
        collective("reduce_scatter", send, block * static_cast<std::size_t>(size()),
                   [&](const std::vector<bytes>& parts) {
                       sum_blocks(type, parts, static_cast<std::size_t>(m_rank) * block, count,
                                  recv);
                   });
    }

    void do_all_reduce(void* data, std::size_t count, element_type type) override {
        collective(
            "all_reduce", data, count * element_bytes(type),
            [&](const std::vector<bytes>& parts) { sum_blocks(type, parts, 0, count, data); });
    }

    void do_send(const void* data, std::size_t count, element_type type, int peer,
                 int tag) override {
        const auto* p = static_cast<const std::byte*>(data);
        std::unique_lock lock(m_world->mutex);
        throw_if_aborted();
        m_hub->mailboxes[{m_rank, peer, tag}].emplace_back(p, p + count * element_bytes(type));
        m_world->changed.notify_all();
    }

    void do_recv(void* data, std::size_t count, element_type type, int peer, int tag) override {
        std::unique_lock lock(m_world->mutex);
        auto& box = m_hub->mailboxes[{peer, m_rank, tag}];
        wait(
            lock, [&] { return !box.empty(); },
            fmt::format("recv(tag {}) from member {}", tag, peer),
            [&] { return std::vector<int>{peer}; });
        bytes msg = std::move(box.front());
        box.pop_front();
        WLB_EXPECTS(msg.size() == count * element_bytes(type),
                    "recv on {}: member {} sent {} bytes, {} expected", group().describe(), peer,
                    msg.size(), count * element_bytes(type));
        if (!msg.empty())
            std::memcpy(data, msg.data(), msg.size());
    }

private:
    template <typename Finish>
    void collective(std::string_view op, const void* send, std::size_t send_bytes,
                    Finish&& finish) {
        std::unique_lock lock(m_world->mutex);
        throw_if_aborted();
        const std::uint64_t seq = m_seq++;
        auto& st = m_hub->ops[seq];
        const auto n = static_cast<std::size_t>(size());
        if (st.arrived.empty()) {
            st.op = std::string(op);
            st.contributions.resize(n);
            st.arrived.assign(n, false);
        }
        WLB_EXPECTS(st.op == op, "{} on {}: member {} called {} where others called {}", op,
                    group().describe(), m_rank, op, st.op);
        const auto* p = static_cast<const std::byte*>(send);
        st.contributions[static_cast<std::size_t>(m_rank)].assign(p, p + send_bytes);
        st.arrived[static_cast<std::size_t>(m_rank)] = true;
        ++st.arrived_count;
        m_world->changed.notify_all();
        wait(
            lock, [&] { return st.arrived_count == static_cast<int>(n); }, std::string(op),
            [&] {
                std::vector<int> missing;
                for (std::size_t m = 0; m < n; ++m)
                    if (!st.arrived[m])
                        missing.push_back(static_cast<int>(m));
                return missing;
            });
        finish(st.contributions);
        if (++st.departed_count == static_cast<int>(n))
            m_hub->ops.erase(seq);
    }

    template <typename Ready, typename Missing>
    void wait(std::unique_lock<std::mutex>& lock, Ready&& ready, const std::string& op,
              Missing&& missing) {
        const double seconds = m_world->watchdog_seconds;
        const auto deadline = std::chrono::steady_clock::now() +
                              std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                  std::chrono::duration<double>(seconds));
        const bool ok = m_world->changed.wait_until(lock, deadline,
                                                    [&] { return m_world->aborted || ready(); });
        throw_if_aborted();
        if (!ok)
            abort_locked(watchdog_message(op, seconds, missing()));
    }

    void throw_if_aborted() const {
        if (m_world->aborted)
            throw runtime_failure(fmt::format("world rank {}: the job was aborted: {}",
                                              world_rank(), m_world->message));
    }

    [[noreturn]] void abort_locked(const std::string& message) {
        if (!m_world->aborted) {
            m_world->aborted = true;
            m_world->message = message;
        }
        m_world->changed.notify_all();
        throw runtime_failure(message);
    }

    std::shared_ptr<state> m_world;
    std::shared_ptr<hub> m_hub;
    int m_rank;
    std::uint64_t m_seq = 0;
    std::uint64_t m_split_seq = 0;
};

} // namespace

fake_world::fake_world(int size, double watchdog_seconds)
    : m_size(size), m_state(std::make_shared<state>()) {
    WLB_EXPECTS(size >= 1, "fake_world of {} ranks", size);
    WLB_EXPECTS(watchdog_seconds > 0, "watchdog timeout {} s", watchdog_seconds);
    m_state->watchdog_seconds = watchdog_seconds;
    m_state->world = std::make_shared<hub>();
    for (int r = 0; r < size; ++r)
        m_state->world->group.world_ranks.push_back(r);
}

fake_world::~fake_world() = default;

std::unique_ptr<communicator> fake_world::communicator_for(int rank) {
    WLB_EXPECTS(rank >= 0 && rank < m_size, "rank {} of a fake world of {}", rank, m_size);
    return std::make_unique<fake_communicator>(m_state, m_state->world, rank);
}

bool fake_world::aborted() const {
    std::lock_guard lock(m_state->mutex);
    return m_state->aborted;
}

std::string fake_world::abort_message() const {
    std::lock_guard lock(m_state->mutex);
    return m_state->message;
}

void fake_world::run(int size, double watchdog_seconds,
                     const std::function<void(communicator&)>& body) {
    fake_world world(size, watchdog_seconds);
    std::vector<std::exception_ptr> errors(static_cast<std::size_t>(size));
    int first_failure = -1; // the rank whose own exception aborted the world
    std::vector<std::thread> threads;
    threads.reserve(static_cast<std::size_t>(size));
    for (int r = 0; r < size; ++r) {
        threads.emplace_back([&, r] {
            auto comm = world.communicator_for(r);
            try {
                body(*comm);
            } catch (const std::exception& e) {
                errors[static_cast<std::size_t>(r)] = std::current_exception();
                // Wake the peers waiting on this rank: they fail now instead of at the timeout.
                std::lock_guard lock(world.m_state->mutex);
                if (!world.m_state->aborted) {
                    first_failure = r;
                    world.m_state->aborted = true;
                    world.m_state->message = fmt::format("world rank {} failed: {}", r, e.what());
                }
                world.m_state->changed.notify_all();
            } catch (...) {
                errors[static_cast<std::size_t>(r)] = std::current_exception();
            }
        });
    }
    for (auto& t : threads)
        t.join();
    if (first_failure >= 0)
        std::rethrow_exception(errors[static_cast<std::size_t>(first_failure)]);
    if (world.aborted())
        throw runtime_failure(world.abort_message());
    for (const auto& e : errors)
        if (e)
            std::rethrow_exception(e);
}

} // namespace wlb::runtime
