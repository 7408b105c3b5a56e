#include "runtime/train/op_recorder.hpp"

#include "base/error.hpp"

#include <chrono>
#include <cmath>
#include <vector>

namespace wlb::runtime {
namespace {

std::int64_t to_ns(double seconds) {
    return static_cast<std::int64_t>(std::llround(seconds * 1e9));
}

bool communicates(const op_record& op) {
    return op.type != op_type::compute;
}

struct entry {
    op_record op;
    device_mark begin = 0;
    device_mark end = 0;
    bool timed = false; ///< start_ns and dur_ns are final
};

class device_clock_recorder final : public op_recorder {
public:
    explicit device_clock_recorder(compute_device& d) : m_device(d) {}

    void begin_step() override {
        m_ops.clear();
        m_device.release_marks();
        m_device.synchronize();
        m_origin_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::steady_clock::now().time_since_epoch())
                          .count();
        m_reference = m_device.mark();
        m_open = false;
    }
    void begin(const op_record& op) override {
        WLB_EXPECTS(!m_open, "operation {} begins inside another", op.name);
        m_ops.push_back({op, m_device.mark(), 0, false});
        m_open = true;
    }
    void end() override {
        WLB_EXPECTS(m_open, "an operation ends that did not begin");
        m_ops.back().end = m_device.mark();
        m_open = false;
    }
    void end_step(step_observer* observer) override {
        for (auto& e : m_ops) {
            e.op.start_ns = m_origin_ns + to_ns(m_device.seconds_between(m_reference, e.begin));
            e.op.dur_ns =
                std::max<std::int64_t>(0, to_ns(m_device.seconds_between(e.begin, e.end)));
            if (observer != nullptr)
                observer->record(e.op);
        }
        m_ops.clear();
        m_device.release_marks();
    }

private:
    compute_device& m_device;
    std::vector<entry> m_ops;
    std::int64_t m_origin_ns = 0;
    device_mark m_reference = 0;
    bool m_open = false;
};

class virtual_clock_recorder final : public op_recorder {
public:
    virtual_clock_recorder(compute_device& d, virtual_clock& c) : m_device(d), m_clock(c) {}

    void begin_step() override {
        m_ops.clear();
        m_device.release_marks();
        m_open = false;
    }
    void begin(const op_record& op) override {
        WLB_EXPECTS(!m_open, "operation {} begins inside another", op.name);
        if (communicates(op)) {
            settle();
            entry e{op, 0, 0, true};
            e.op.start_ns = to_ns(m_clock.now_s);
            m_ops.push_back(e);
        } else {
            m_ops.push_back({op, m_device.mark(), 0, false});
        }
        m_open = true;
    }
    void end() override {
        WLB_EXPECTS(m_open, "an operation ends that did not begin");
        auto& e = m_ops.back();
        if (e.timed)
            e.op.dur_ns = std::max<std::int64_t>(0, to_ns(m_clock.now_s) - e.op.start_ns);
        else
            e.end = m_device.mark();
        m_open = false;
    }
    void end_step(step_observer* observer) override {
        settle();
        if (observer != nullptr)
            for (const auto& e : m_ops)
                observer->record(e.op);
        m_ops.clear();
        m_device.release_marks();
    }

private:
    /// Times the work queued since the last communication: back to back on the clock.
    void settle() {
        m_device.synchronize();
        for (auto& e : m_ops) {
            if (e.timed)
                continue;
            const double seconds = m_device.seconds_between(e.begin, e.end);
            e.op.start_ns = to_ns(m_clock.now_s);
            m_clock.now_s += seconds;
            e.op.dur_ns = to_ns(m_clock.now_s) - e.op.start_ns;
            e.timed = true;
        }
    }

    compute_device& m_device;
    virtual_clock& m_clock;
    std::vector<entry> m_ops;
    bool m_open = false;
};

} // namespace

std::unique_ptr<op_recorder> make_device_clock_recorder(compute_device& device) {
    return std::make_unique<device_clock_recorder>(device);
}

std::unique_ptr<op_recorder> make_virtual_clock_recorder(compute_device& device,
                                                         virtual_clock& clock) {
    return std::make_unique<virtual_clock_recorder>(device, clock);
}

} // namespace wlb::runtime
