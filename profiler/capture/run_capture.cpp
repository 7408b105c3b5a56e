#include "profiler/capture/run_capture.hpp"

#include "base/atomic_file.hpp"
#include "base/error.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fmt/format.h>
#include <limits>

namespace wlb::profiler {

namespace {

/// The runtime's range seam over one rank's capture session.
class session_ranges final : public runtime::capture_ranges {
public:
    explicit session_ranges(capture_session& s) : m_session(s) {}
    ~session_ranges() override {
        while (!m_open.empty())
            end();
    }
    void step(std::int64_t step) override { m_open.push_back(m_session.step(step)); }
    void micro_batch(int m) override { m_open.push_back(m_session.micro_batch(m)); }
    void stage(int stage, int virtual_stage) override {
        m_open.push_back(m_session.stage(stage, virtual_stage));
    }
    void phase(runtime::phase ph) override { m_open.push_back(m_session.phase(ph)); }
    void layer(int layer) override { m_open.push_back(m_session.layer(layer)); }
    void end() override {
        try {
            if (!m_open.empty())
                m_open.pop_back(); // closes the session's innermost range
        } catch (...) {
            // Capture is best effort and end() runs in destructors.
        }
    }
    void register_stream(void* stream, runtime::lane where) override {
        m_session.register_stream(stream, where);
    }

private:
    capture_session& m_session;
    std::vector<scoped_range> m_open;
};

std::string rank_report_file(int rank) {
    return fmt::format("capture_rank_{:05d}.json", rank);
}

} // namespace

run_capture::run_capture(source_result source,
                         std::function<std::unique_ptr<range_marker>()> make_marker)
    : m_backend(std::move(source)), m_make_marker(std::move(make_marker)) {
    if (m_backend.source != nullptr)
        m_shared = std::make_unique<shared_activity_source>(std::move(m_backend.source));
}

run_capture::~run_capture() {
    m_sessions.clear(); // sessions (their views) go before the shared source
}

std::unique_ptr<runtime::capture_ranges> run_capture::ranges(int rank) {
    WLB_EXPECTS(!m_sessions.contains(rank), "a second capture of rank {}", rank);
    auto marker = m_make_marker ? m_make_marker() : nullptr;
    auto view = m_shared ? m_shared->view(rank) : nullptr;
    const bool first = m_sessions.empty();
    auto session = std::make_unique<capture_session>(rank, std::move(view), std::move(marker),
                                                     m_backend.reason, first);
    session->start();
    auto& s = *session;
    m_sessions.emplace(rank, std::move(session));
    return std::make_unique<session_ranges>(s);
}

std::function<std::unique_ptr<runtime::capture_ranges>(int)> run_capture::factory() {
    auto self = shared_from_this();
    return [self](int rank) {
        return self->ranges(rank);
    };
}

run_capture_summary run_capture::finish(const std::string& dir, const runtime::layout& l,
                                        const std::vector<runtime::sharded_step>& batches,
                                        runtime::communicator* world) {
    runtime::trace_meta meta;
    meta.job_layout = l;
    meta.steps = static_cast<std::int64_t>(batches.size());
    run_capture_summary out;
    out.dir = dir;
    // Stop and convert; the origin is the job's earliest record.
    std::map<int, capture_result> results;
    std::int64_t first = std::numeric_limits<std::int64_t>::max() / 2;
    for (auto& [rank, session] : m_sessions) {
        auto r = session->finish(0);
        for (const auto& e : r.events)
            first = std::min(first, e.start_ns);
        out.dropped += r.losses.dropped_records + r.losses.buffers_refused;
        out.warnings.insert(out.warnings.end(), r.losses.warnings.begin(), r.losses.warnings.end());
        out.source = r.report.value("source", std::string("none"));
        results.emplace(rank, std::move(r));
    }
    if (out.source.empty())
        out.source = "none";
    std::int64_t origin = first;
    if (world != nullptr) {
        const auto all = runtime::all_gather_int64(*world, first);
        origin = *std::min_element(all.begin(), all.end());
    }
    // Every rank of this process writes its file and its report.
    std::filesystem::create_directories(dir);
    const int world_size = meta.job_layout.world_size();
    std::vector<std::int64_t> counts(static_cast<std::size_t>(world_size), 0);
    std::string failure;
    for (auto& [rank, r] : results) {
        for (auto& e : r.events)
            e.start_ns -= origin;
        try {
            runtime::write_trace_rank_file(dir, rank, r.events);
            write_file_atomic(dir + "/" + rank_report_file(rank), r.report.dump(2) + "\n");
            counts[static_cast<std::size_t>(rank)] = static_cast<std::int64_t>(r.events.size());
        } catch (const std::exception& e) {
            failure = e.what();
        }
    }
    if (!failure.empty())
        std::fprintf(stderr, "wlbtune: warning: the CUPTI trace in %s is incomplete: %s\n",
                     dir.c_str(), failure.c_str());
    if (world != nullptr) {
        // Each rank's count; a rank of another process sums into its own slot.
        std::vector<double> mine(counts.begin(), counts.end());
        std::vector<double> all(mine.size());
        std::copy(mine.begin(), mine.end(), all.begin());
        world->all_reduce(std::span<double>(all));
        for (std::size_t r = 0; r < counts.size(); ++r)
            counts[r] = static_cast<std::int64_t>(all[r]);
    }
    for (auto c : counts)
        out.events += c;
    if (world != nullptr && world->rank() != 0)
        return out;
    // Ranks without a file of their own (no capture there) get an empty one.
    for (int r = 0; r < world_size; ++r)
        if (!results.contains(r) && world == nullptr)
            runtime::write_trace_rank_file(dir, r, {});
    bool batches_written = !batches.empty();
    if (batches_written) {
        try {
            runtime::write_trace_batches(dir, batches);
        } catch (const std::exception&) {
            batches_written = false;
        }
    }
    meta.source = out.source;
    meta.tp_replicated = false;
    meta.batches = batches_written ? std::string(runtime::trace_batches_file) : std::string();
    meta.note = "captured by CUPTI during wlbtune run --backend cuda: every kernel, copy, set and "
                "synchronization, tied to the step, micro-batch, stage, phase and layer ranges "
                "(NVTX domain wlbtune); times from the job's first record";
    nlohmann::json extra = {{"capture_reports", nlohmann::json::array()}};
    for (int r = 0; r < world_size; ++r)
        extra["capture_reports"].push_back(rank_report_file(r));
    if (world == nullptr)
        for (int r = 0; r < world_size; ++r)
            if (!results.contains(r))
                write_file_atomic(dir + "/" + rank_report_file(r),
                                  R"({"source": "none", "warnings": ["rank not captured"]})"
                                  "\n");
    runtime::write_trace_manifest(dir, meta, counts, &extra);
    return out;
}

} // namespace wlb::profiler
