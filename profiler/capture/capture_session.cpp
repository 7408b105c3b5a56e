#include "profiler/capture/capture_session.hpp"

#include "base/error.hpp"

#include <chrono>
#include <cstdio>
#include <fmt/format.h>

namespace wlb::profiler {

scoped_range::~scoped_range() {
    if (m_session != nullptr)
        m_session->end_range();
}

capture_session::capture_session(int rank, std::unique_ptr<activity_source> source,
                                 std::unique_ptr<range_marker> marker,
                                 std::string unavailable_reason, bool print_unavailable)
    : m_rank(rank), m_source(std::move(source)), m_marker(std::move(marker)) {
    if (m_source != nullptr) {
        m_source_name = std::string(m_source->name());
        return;
    }
    const std::string message =
        "device capture unavailable: " +
        (unavailable_reason.empty() ? std::string("no capture backend") : unavailable_reason);
    if (print_unavailable)
        std::fprintf(stderr, "wlbtune: warning: rank %d: %s; the run continues without it\n",
                     m_rank, message.c_str());
    m_collected.losses.warnings.push_back(message);
}

capture_session::~capture_session() {
    if (m_source != nullptr && m_started) {
        try {
            m_source->stop();
        } catch (...) {
            // Destructors never throw; the records are lost with the session anyway.
        }
    }
}

void capture_session::fail(const std::string& what) noexcept {
    try {
        const std::string message =
            fmt::format("device capture ({}) failed: {}; records after this point are not "
                        "captured",
                        m_source_name, what);
        std::fprintf(stderr, "wlbtune: warning: rank %d: %s; the run continues\n", m_rank,
                     message.c_str());
        m_collected.losses.warnings.push_back(message);
        if (m_source != nullptr) {
            try { // keep what the backend already holds
                if (m_started)
                    m_source->stop();
                m_collected.append(m_source->drain());
            } catch (...) {
                m_collected.losses.warnings.push_back(
                    "the records captured before the failure could not be read");
            }
        }
    } catch (...) {
        // Out of memory while reporting: nothing more to do but switch capture off.
    }
    m_source.reset();
    m_started = false;
}

template <typename F>
void capture_session::guarded(const char* what, F&& f) noexcept {
    if (m_source == nullptr)
        return;
    try {
        f();
    } catch (const std::exception& e) {
        fail(fmt::format("{}: {}", what, e.what()));
    } catch (...) {
        fail(fmt::format("{}: unknown error", what));
    }
}

void capture_session::start() {
    guarded("start", [&] {
        m_source->start();
        m_started = true;
    });
}

void capture_session::register_stream(void* stream, runtime::lane lane) {
    guarded("stream id", [&] { m_stream_lanes[m_source->stream_id(stream)] = lane; });
}

void capture_session::register_stream_id(std::uint32_t stream_id, runtime::lane lane) {
    m_stream_lanes[stream_id] = lane;
}

std::int64_t capture_session::now_ns() {
    if (m_source != nullptr) {
        std::int64_t t = 0;
        bool ok = false;
        guarded("clock", [&] {
            t = m_source->now_ns();
            ok = true;
        });
        if (ok)
            return t;
    }
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

const range_context& capture_session::context() const noexcept {
    static const range_context none;
    if (m_stack.empty())
        return none;
    return m_contexts[static_cast<std::size_t>(m_stack.back().record.context_id - 1)];
}

void capture_session::open(range_level level, std::string name, const range_context& ctx) {
    m_contexts.push_back(ctx);
    const auto id = static_cast<std::uint64_t>(m_contexts.size());
    range_record r;
    r.level = level;
    r.name = std::move(name);
    r.start_ns = now_ns();
    r.context_id = id;
    guarded("push context", [&] { m_source->push_context(id); });
    if (m_marker != nullptr)
        m_marker->push(level, r.name);
    m_stack.push_back({std::move(r)});
}

void capture_session::end_range() {
    WLB_EXPECTS(!m_stack.empty(), "capture: end_range with no open range");
    range_record r = std::move(m_stack.back().record);
    m_stack.pop_back();
    r.end_ns = now_ns();
    guarded("pop context", [&] { m_source->pop_context(); });
    if (m_marker != nullptr)
        m_marker->pop();
    m_collected.ranges.push_back(std::move(r));
}

scoped_range capture_session::step(std::int64_t step) {
    range_context c;
    c.step = step;
    open(range_level::step, fmt::format("step {}", step), c);
    return scoped_range(*this);
}

scoped_range capture_session::micro_batch(int micro_batch) {
    range_context c = context();
    c.micro_batch = micro_batch;
    c.stage = c.virtual_stage = c.layer = -1;
    c.ph = runtime::phase::none;
    open(range_level::micro_batch, fmt::format("micro-batch {}", micro_batch), c);
    return scoped_range(*this);
}

scoped_range capture_session::stage(int stage, int virtual_stage) {
    range_context c = context();
    c.stage = stage;
    c.virtual_stage = virtual_stage;
    c.layer = -1;
    c.ph = runtime::phase::none;
    open(range_level::stage, fmt::format("stage {}.{}", stage, virtual_stage), c);
    return scoped_range(*this);
}

scoped_range capture_session::phase(runtime::phase ph) {
    range_context c = context();
    c.ph = ph;
    c.layer = -1;
    open(range_level::phase, std::string(runtime::phase_name(ph)), c);
    return scoped_range(*this);
}

scoped_range capture_session::layer(int layer) {
    range_context c = context();
    c.layer = layer;
    open(range_level::layer, fmt::format("layer {}", layer), c);
    return scoped_range(*this);
}

capture_result capture_session::finish(std::int64_t origin_ns) {
    while (!m_stack.empty())
        end_range();
    if (m_source != nullptr && m_started) {
        guarded("stop", [&] {
            m_source->stop();
            m_started = false;
        });
        guarded("drain", [&] { m_collected.append(m_source->drain()); });
    }
    m_collected.contexts.clear();
    for (std::size_t i = 0; i < m_contexts.size(); ++i)
        m_collected.contexts.emplace_back(static_cast<std::uint64_t>(i + 1), m_contexts[i]);
    capture_result out;
    conversion_options options;
    options.rank = m_rank;
    options.origin_ns = origin_ns;
    options.stream_lanes = m_stream_lanes;
    out.events = activities_to_trace(m_collected, options, out.stats);
    out.report = capture_report_json(m_source_name, out.stats, m_collected);
    out.losses = m_collected.losses;
    m_collected = capture_batch{};
    return out;
}

} // namespace wlb::profiler
