// A scripted capture backend for unit tests (profiler/capture/activity_source.hpp): records are
// made by hand, `launch` imitates CUPTI (a kernel record whose correlation id is linked to the
// context pushed last, as CUPTI's external correlation does), and each method can be told to fail.
#pragma once

#include "base/error.hpp"
#include "profiler/capture/activity_source.hpp"

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace wlb::test {

struct fake_capture_state {
    profiler::capture_batch pending;
    std::vector<std::uint64_t> stack;  ///< contexts pushed and not popped
    std::vector<std::uint64_t> pushed; ///< every context pushed, in order
    std::map<void*, std::uint32_t> stream_ids;
    std::int64_t clock_ns = 1000;
    std::uint32_t correlation = 0;
    bool started = false;
    bool stopped = false;
    bool fail_start = false;
    bool fail_drain = false;
    bool fail_push = false;

    /// A kernel issued now on `stream`, running `dur_ns` from 5 ns later.
    void launch(std::string name, std::uint32_t stream, std::int64_t dur_ns) {
        const std::uint32_t corr = ++correlation;
        const std::int64_t t = clock_ns;
        pending.activities.push_back({profiler::activity_kind::kernel, std::move(name), t + 5,
                                      t + 5 + dur_ns, 0, stream, corr, 0});
        if (!stack.empty())
            pending.links.push_back({corr, stack.back()});
        clock_ns += dur_ns + 10;
    }
};

class fake_activity_source final : public profiler::activity_source {
public:
    explicit fake_activity_source(std::shared_ptr<fake_capture_state> s) : m_s(std::move(s)) {}
    std::string_view name() const noexcept override { return "fake"; }
    void start() override {
        if (m_s->fail_start)
            throw runtime_failure("fake start failure");
        m_s->started = true;
    }
    void stop() override { m_s->stopped = true; }
    void flush() override {}
    profiler::capture_batch drain() override {
        if (m_s->fail_drain)
            throw runtime_failure("fake drain failure");
        return std::exchange(m_s->pending, profiler::capture_batch{});
    }
    void push_context(std::uint64_t id) override {
        if (m_s->fail_push)
            throw runtime_failure("fake push failure");
        m_s->stack.push_back(id);
        m_s->pushed.push_back(id);
    }
    void pop_context() override { m_s->stack.pop_back(); }
    std::int64_t now_ns() override { return m_s->clock_ns += 10; }
    std::uint32_t stream_id(void* stream) override { return m_s->stream_ids.at(stream); }

private:
    std::shared_ptr<fake_capture_state> m_s;
};

} // namespace wlb::test
