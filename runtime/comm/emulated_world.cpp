#include "runtime/comm/emulated_world.hpp"

#include "base/error.hpp"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <exception>
#include <fmt/format.h>
#include <map>
#include <mutex>
#include <thread>
#include <tuple>
#include <vector>

namespace wlb::runtime {

namespace {

enum class rank_state : std::uint8_t { ready, running, waiting, done };

/// The bytes of one element in the job's number format (a host device stores bf16 as float).
double wire_bytes(dtype t) {
    switch (t) {
    case dtype::bf16:
        return 2.0;
    case dtype::f32:
    case dtype::i32:
        return 4.0;
    case dtype::f64:
    case dtype::i64:
        return 8.0;
    }
    return 4.0;
}

/// One collective (or host sum) in progress: what each member brought.
struct instance {
    std::string op;
    int size = 0;
    int arrived = 0;
    int left = 0; ///< members that have not yet taken the result
    bool done = false;
    std::vector<dspan> send, recv;
    std::vector<double> arrival_s;
    std::vector<double> values; ///< host sums
    double result = 0.0;
    double end_s = 0.0;
};

struct message {
    dbuffer staging;
    double arrival_s = 0.0;
};

} // namespace

struct emulated_world::state {
    int size = 0;
    emulated_comm_model model;
    std::mutex mu;
    std::condition_variable cv;
    int turn = -1;
    bool aborted = false;
    std::string abort_message;
    std::exception_ptr first_error;
    std::vector<rank_state> status;
    std::vector<std::function<bool()>> ready_when; ///< per waiting rank
    std::vector<std::string> waiting_in;           ///< per waiting rank, for a deadlock report
    std::vector<virtual_clock> clocks;
    std::map<std::pair<std::string, std::int64_t>, std::shared_ptr<instance>> collectives;
    std::map<std::tuple<std::string, int, int, int>, std::deque<message>> mail;
    std::vector<std::int64_t> host_seq;

    /// Lock held: hands the baton to the lowest rank that can run, or declares a deadlock.
    void pass_baton() {
        turn = -1;
        bool all_done = true;
        for (int r = 0; r < size; ++r) {
            const auto s = status[static_cast<std::size_t>(r)];
            if (s == rank_state::done)
                continue;
            all_done = false;
            if (s == rank_state::ready ||
                (s == rank_state::waiting && ready_when[static_cast<std::size_t>(r)]())) {
                turn = r;
                break;
            }
        }
        if (turn < 0 && !all_done && !aborted) {
            std::string waits;
            for (int r = 0; r < size; ++r)
                if (status[static_cast<std::size_t>(r)] == rank_state::waiting)
                    waits += fmt::format("{}rank {} waits in {}", waits.empty() ? "" : "; ", r,
                                         waiting_in[static_cast<std::size_t>(r)]);
            aborted = true;
            abort_message = "emulated job: no rank can continue (the ranks' orders of "
                            "collectives and transfers disagree): " +
                            waits;
        }
        cv.notify_all();
    }

    /// Lock held by the caller through `lock`; rank r gives up the baton until `ready` holds
    /// and its turn comes.
    void wait_until(std::unique_lock<std::mutex>& lock, int r, std::function<bool()> ready,
                    std::string what) {
        if (ready())
            return;
        status[static_cast<std::size_t>(r)] = rank_state::waiting;
        ready_when[static_cast<std::size_t>(r)] = std::move(ready);
        waiting_in[static_cast<std::size_t>(r)] = std::move(what);
        pass_baton();
        cv.wait(lock, [&] { return turn == r || aborted; });
        if (aborted && turn != r)
            throw runtime_failure(abort_message);
        status[static_cast<std::size_t>(r)] = rank_state::running;
        ready_when[static_cast<std::size_t>(r)] = nullptr;
    }

    /// Lock held: the instance of the `seq`-th collective of `group`, created on first arrival.
    std::shared_ptr<instance> instance_of(const std::string& group, std::int64_t seq,
                                          std::string_view op, int members) {
        auto& slot = collectives[{group, seq}];
        if (!slot) {
            slot = std::make_shared<instance>();
            slot->op = op;
            slot->size = members;
            slot->left = members;
            slot->send.resize(static_cast<std::size_t>(members));
            slot->recv.resize(static_cast<std::size_t>(members));
            slot->arrival_s.resize(static_cast<std::size_t>(members));
            slot->values.resize(static_cast<std::size_t>(members));
        }
        WLB_EXPECTS(slot->op == op,
                    "emulated job: {} call {} is {} on one member and {} on another", group, seq,
                    slot->op, op);
        return slot;
    }

    /// Lock held: member done with the instance; the last one forgets it.
    void release(const std::string& group, std::int64_t seq, instance& inst) {
        if (--inst.left == 0)
            collectives.erase({group, seq});
    }
};

emulated_world::emulated_world(int size, emulated_comm_model model)
    : m_state(std::make_shared<state>()) {
    WLB_EXPECTS(size >= 1, "emulated world of {} ranks", size);
    m_state->size = size;
    m_state->model = std::move(model);
    m_state->status.assign(static_cast<std::size_t>(size), rank_state::done);
    m_state->ready_when.resize(static_cast<std::size_t>(size));
    m_state->waiting_in.resize(static_cast<std::size_t>(size));
    m_state->clocks.resize(static_cast<std::size_t>(size));
    m_state->host_seq.assign(static_cast<std::size_t>(size), 0);
}

emulated_world::~emulated_world() = default;

int emulated_world::size() const noexcept {
    return m_state->size;
}

bool emulated_world::modelled() const noexcept {
    return m_state->model.modelled();
}

virtual_clock& emulated_world::clock(int rank) {
    WLB_EXPECTS(rank >= 0 && rank < m_state->size, "rank {} of {}", rank, m_state->size);
    return m_state->clocks[static_cast<std::size_t>(rank)];
}

void emulated_world::run(const std::function<void(int)>& body) {
    auto& s = *m_state;
    {
        std::lock_guard lock(s.mu);
        std::fill(s.status.begin(), s.status.end(), rank_state::ready);
        s.aborted = false;
        s.abort_message.clear();
        s.first_error = nullptr;
        s.collectives.clear();
        s.mail.clear();
        s.turn = 0;
    }
    std::vector<std::thread> threads;
    threads.reserve(static_cast<std::size_t>(s.size));
    for (int r = 0; r < s.size; ++r)
        threads.emplace_back([&s, &body, r] {
            {
                std::unique_lock lock(s.mu);
                s.cv.wait(lock, [&] { return s.turn == r || s.aborted; });
                if (s.aborted) {
                    s.status[static_cast<std::size_t>(r)] = rank_state::done;
                    return;
                }
                s.status[static_cast<std::size_t>(r)] = rank_state::running;
            }
            try {
                body(r);
            } catch (...) {
                std::lock_guard lock(s.mu);
                if (!s.aborted) {
                    s.first_error = std::current_exception();
                    s.aborted = true;
                    s.abort_message = fmt::format("emulated job: rank {} failed", r);
                }
            }
            std::lock_guard lock(s.mu);
            s.status[static_cast<std::size_t>(r)] = rank_state::done;
            if (!s.aborted)
                s.pass_baton();
            else
                s.cv.notify_all();
        });
    for (auto& t : threads)
        t.join();
    if (s.first_error)
        std::rethrow_exception(s.first_error);
    if (s.aborted)
        throw runtime_failure(s.abort_message);
}

namespace {

class emulated_comm final : public device_comm {
public:
    emulated_comm(std::shared_ptr<emulated_world::state> s, int world_rank, group_desc g,
                  compute_device& device)
        : m_state(std::move(s)), m_world_rank(world_rank), m_group(std::move(g)), m_device(device),
          m_key(m_group.describe()) {
        const auto it =
            std::find(m_group.world_ranks.begin(), m_group.world_ranks.end(), world_rank);
        WLB_EXPECTS(it != m_group.world_ranks.end(), "world rank {} is not in its {}", world_rank,
                    m_key);
        m_rank = static_cast<int>(it - m_group.world_ranks.begin());
    }

    int rank() const noexcept override { return m_rank; }
    int size() const noexcept override { return static_cast<int>(m_group.world_ranks.size()); }
    const group_desc& group() const noexcept override { return m_group; }

    void all_gather(dspan send, dspan recv) override {
        check_gather(send, recv, "all_gather");
        collective("all_gather", send, recv, collective_kind::all_gather,
                   static_cast<double>(recv.count) * wire_bytes(recv.type), [this](instance& inst) {
                       const std::size_t n = inst.send[0].count;
                       for (int i = 0; i < inst.size; ++i)
                           for (int j = 0; j < inst.size; ++j)
                               m_device.copy(inst.recv[static_cast<std::size_t>(j)].sub(
                                                 static_cast<std::size_t>(i) * n, n),
                                             inst.send[static_cast<std::size_t>(i)]);
                   });
    }

    void reduce_scatter(dspan send, dspan recv) override {
        check_gather(recv, send, "reduce_scatter");
        collective("reduce_scatter", send, recv, collective_kind::reduce_scatter,
                   static_cast<double>(send.count) * wire_bytes(send.type), [this](instance& inst) {
                       const std::size_t n = inst.recv[0].count;
                       const dbuffer acc = m_device.alloc(dtype::f32, n);
                       for (int j = 0; j < inst.size; ++j) {
                           m_device.zero(acc);
                           for (int i = 0; i < inst.size; ++i)
                               m_device.accumulate(acc, inst.send[static_cast<std::size_t>(i)].sub(
                                                            static_cast<std::size_t>(j) * n, n));
                           m_device.convert(inst.recv[static_cast<std::size_t>(j)], acc);
                       }
                       m_device.synchronize(); // acc is freed at return
                   });
    }

    void all_reduce(dspan data) override {
        collective("all_reduce", data, data, collective_kind::all_reduce,
                   static_cast<double>(data.count) * wire_bytes(data.type), [this](instance& inst) {
                       const std::size_t n = inst.recv[0].count;
                       const dbuffer acc = m_device.alloc(dtype::f32, n);
                       m_device.zero(acc);
                       for (int i = 0; i < inst.size; ++i)
                           m_device.accumulate(acc, inst.send[static_cast<std::size_t>(i)]);
                       for (int i = 0; i < inst.size; ++i)
                           m_device.convert(inst.recv[static_cast<std::size_t>(i)], acc);
                       m_device.synchronize();
                   });
    }

    void send(dspan data, int peer, int tag) override {
        check_peer(peer, tag, "send");
        auto& s = *m_state;
        message msg;
        msg.staging = m_device.alloc(data.type, data.count);
        const double bytes = static_cast<double>(data.count) * wire_bytes(data.type);
        double seconds = 0.0;
        if (s.model.modelled()) {
            m_device.copy(msg.staging, data);
            seconds = s.model.p2p_seconds(bytes, m_world_rank, world_of(peer));
        } else {
            seconds = measured([&] { m_device.copy(msg.staging, data); });
        }
        m_device.synchronize(); // the receiver's device copies out of the staging buffer
        std::lock_guard lock(s.mu);
        auto& clock = s.clocks[static_cast<std::size_t>(m_world_rank)];
        clock.now_s += seconds;
        msg.arrival_s = clock.now_s;
        s.mail[{m_key, m_rank, peer, tag}].push_back(std::move(msg));
    }

    void recv(dspan data, int peer, int tag) override {
        check_peer(peer, tag, "recv");
        auto& s = *m_state;
        m_device.synchronize();
        message msg;
        {
            std::unique_lock lock(s.mu);
            auto& box = s.mail[{m_key, peer, m_rank, tag}];
            s.wait_until(
                lock, m_world_rank, [&box] { return !box.empty(); },
                fmt::format("recv from member {} (tag {}) on {}", peer, tag, m_key));
            msg = std::move(box.front());
            box.pop_front();
        }
        WLB_EXPECTS(msg.staging.count() == data.count && msg.staging.span().type == data.type,
                    "recv on {}: {} {} expected, {} {} sent", m_key, data.count,
                    dtype_name(data.type), msg.staging.count(),
                    dtype_name(msg.staging.span().type));
        m_device.copy(data, msg.staging);
        m_device.synchronize(); // before the staging buffer goes
        std::lock_guard lock(s.mu);
        auto& clock = s.clocks[static_cast<std::size_t>(m_world_rank)];
        clock.now_s = std::max(clock.now_s, msg.arrival_s);
    }

private:
    int world_of(int member) const { return m_group.world_ranks[static_cast<std::size_t>(member)]; }

    template <typename F>
    double measured(F&& f) {
        m_device.synchronize();
        const auto a = m_device.mark();
        f();
        const auto b = m_device.mark();
        return m_device.seconds_between(a, b);
    }

    template <typename Move>
    void collective(std::string_view op, dspan send, dspan recv, collective_kind kind, double bytes,
                    Move&& move) {
        WLB_EXPECTS(send.type == dtype::bf16 || send.type == dtype::f32,
                    "emulated {} on {} of {} data", op, m_key, dtype_name(send.type));
        auto& s = *m_state;
        const std::int64_t seq = m_seq++;
        std::shared_ptr<instance> inst;
        bool last = false;
        {
            std::lock_guard lock(s.mu);
            inst = s.instance_of(m_key, seq, op, size());
            const auto me = static_cast<std::size_t>(m_rank);
            inst->send[me] = send;
            inst->recv[me] = recv;
            inst->arrival_s[me] = s.clocks[static_cast<std::size_t>(m_world_rank)].now_s;
            last = ++inst->arrived == inst->size;
        }
        if (last) {
            double seconds = 0.0;
            if (s.model.modelled()) {
                move(*inst);
                m_device.synchronize();
                seconds = s.model.collective_seconds(kind, bytes, m_group.world_ranks);
            } else {
                seconds = measured([&] { move(*inst); });
            }
            std::lock_guard lock(s.mu);
            inst->end_s =
                *std::max_element(inst->arrival_s.begin(), inst->arrival_s.end()) + seconds;
            inst->done = true;
        } else {
            m_device.synchronize(); // our data is complete before another rank runs
            std::unique_lock lock(s.mu);
            s.wait_until(
                lock, m_world_rank, [inst] { return inst->done; },
                fmt::format("{} on {} (call {}, {} of {} arrived)", op, m_key, seq, inst->arrived,
                            inst->size));
        }
        std::lock_guard lock(s.mu);
        s.clocks[static_cast<std::size_t>(m_world_rank)].now_s = inst->end_s;
        s.release(m_key, seq, *inst);
    }

    std::shared_ptr<emulated_world::state> m_state;
    int m_world_rank;
    int m_rank = 0;
    group_desc m_group;
    compute_device& m_device;
    std::string m_key;
    std::int64_t m_seq = 0;
};

} // namespace

std::unique_ptr<device_comm> emulated_world::comm(int rank, const group_desc& group,
                                                  compute_device& device) {
    return std::make_unique<emulated_comm>(m_state, rank, group, device);
}

double emulated_world::host_sum(int rank, double value) {
    auto& s = *m_state;
    std::unique_lock lock(s.mu);
    const std::int64_t seq = s.host_seq[static_cast<std::size_t>(rank)]++;
    auto inst = s.instance_of("host sum", seq, "host_sum", s.size);
    inst->values[static_cast<std::size_t>(rank)] = value;
    if (++inst->arrived == inst->size) {
        for (double v : inst->values)
            inst->result += v;
        inst->done = true;
    } else {
        s.wait_until(
            lock, rank, [inst] { return inst->done; },
            fmt::format("the world's host sum {} ({} of {} arrived)", seq, inst->arrived,
                        inst->size));
    }
    const double result = inst->result;
    s.release("host sum", seq, *inst);
    return result;
}

void emulated_world::clock_barrier(int rank) {
    auto& s = *m_state;
    std::unique_lock lock(s.mu);
    const std::int64_t seq = s.host_seq[static_cast<std::size_t>(rank)]++;
    auto inst = s.instance_of("host sum", seq, "clock barrier", s.size);
    inst->arrival_s[static_cast<std::size_t>(rank)] =
        s.clocks[static_cast<std::size_t>(rank)].now_s;
    if (++inst->arrived == inst->size) {
        inst->end_s = *std::max_element(inst->arrival_s.begin(), inst->arrival_s.end());
        inst->done = true;
    } else {
        s.wait_until(
            lock, rank, [inst] { return inst->done; },
            fmt::format("the step barrier ({} of {} arrived)", inst->arrived, inst->size));
    }
    s.clocks[static_cast<std::size_t>(rank)].now_s = inst->end_s;
    s.release("host sum", seq, *inst);
}

} // namespace wlb::runtime
