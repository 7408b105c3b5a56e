#include "runtime/train/train_run.hpp"

#include "base/error.hpp"
#include "runtime/trace/trace_capture.hpp"
#include "runtime/train/device_backend.hpp"

#include <algorithm>
#include <chrono>
#include <fmt/ranges.h>
#include <limits>
#include <memory>
#include <optional>

namespace wlb::runtime {
namespace {

// A non-negative int64 as two doubles, each exact (the communicator moves floating point).
std::pair<double, double> split64(std::int64_t v) {
    WLB_EXPECTS(v >= 0, "negative clock value {}", v);
    return {static_cast<double>(v >> 32), static_cast<double>(v & 0xffffffff)};
}
std::int64_t join64(double hi, double lo) {
    return (static_cast<std::int64_t>(hi) << 32) + static_cast<std::int64_t>(lo);
}

/// The maximum of one value over the world.
double world_max(communicator& world, double v) {
    std::vector<double> mine = {v};
    std::vector<double> all(static_cast<std::size_t>(world.size()));
    world.all_gather(std::span<const double>(mine), std::span<double>(all));
    return *std::max_element(all.begin(), all.end());
}

void write_trace(communicator& world, const layout& l, trace_capture& capture,
                 const std::vector<training_step>& steps, const run_options& o, run_result& out) {
    // The origin: the earliest operation of any rank (ranks without events offer the maximum).
    const auto first = capture.first_start_ns();
    const auto [hi, lo] = split64(first.value_or(std::numeric_limits<std::int64_t>::max() / 2));
    std::vector<double> mine = {hi, lo};
    std::vector<double> all(static_cast<std::size_t>(2 * world.size()));
    world.all_gather(std::span<const double>(mine), std::span<double>(all));
    std::int64_t origin = std::numeric_limits<std::int64_t>::max();
    for (int r = 0; r < world.size(); ++r)
        origin = std::min(origin, join64(all[static_cast<std::size_t>(2 * r)],
                                         all[static_cast<std::size_t>(2 * r + 1)]));
    capture.rebase(origin);
    std::string failure;
    double count = static_cast<double>(capture.events().size());
    try {
        write_trace_rank_file(o.trace_dir, world.rank(), capture.events());
    } catch (const std::exception& e) {
        failure = e.what();
        count = -1.0;
    }
    // Every rank's file is complete (or failed) once its count arrives.
    std::vector<double> counts(static_cast<std::size_t>(world.size()));
    std::vector<double> c = {count};
    world.all_gather(std::span<const double>(c), std::span<double>(counts));
    std::vector<int> failed;
    std::vector<std::int64_t> per_rank;
    for (int r = 0; r < world.size(); ++r) {
        if (counts[static_cast<std::size_t>(r)] < 0)
            failed.push_back(r);
        per_rank.push_back(static_cast<std::int64_t>(counts[static_cast<std::size_t>(r)]));
        out.trace_events += per_rank.back();
    }
    if (!failed.empty())
        throw runtime_failure(fmt::format("trace directory {}: ranks {} could not write their "
                                          "files{}{}",
                                          o.trace_dir, fmt::join(failed, ", "),
                                          failure.empty() ? "" : "; here: ", failure));
    if (world.rank() == 0) {
        // The batches, so that analysis can set the lost time against their predicted work; a
        // trace without them is still a trace (the manifest then names none).
        bool batches_written = true;
        try {
            std::vector<sharded_step> batches;
            batches.reserve(steps.size());
            for (const auto& s : steps)
                batches.push_back({s.batch.step, s.shards});
            write_trace_batches(o.trace_dir, batches);
        } catch (const std::exception& e) {
            batches_written = false;
            fmt::print(stderr, "wlbtune run: warning: the batches are left out of the trace: {}\n",
                       e.what());
        }
        trace_meta meta = o.trace_info;
        meta.job_layout = l;
        meta.steps = static_cast<std::int64_t>(steps.size());
        meta.tp_replicated = false;
        meta.batches = batches_written ? std::string(trace_batches_file) : std::string();
        write_trace_manifest(o.trace_dir, meta, per_rank, &o.trace_manifest_extra);
    }
    world.barrier(); // the manifest exists on return, on every rank
}

} // namespace

run_result run_emulated_training(emulated_job& job, const std::vector<training_step>& steps,
                                 const run_options& options,
                                 const std::function<void(const step_record&)>& on_step) {
    const auto& l = job.job_layout();
    std::vector<std::unique_ptr<trace_capture>> captures;
    std::vector<step_observer*> observers;
    if (!options.trace_dir.empty())
        for (int r = 0; r < l.world_size(); ++r) {
            captures.push_back(std::make_unique<trace_capture>(l, r));
            observers.push_back(captures.back().get());
        }
    run_result out;
    for (const auto& s : steps) {
        for (auto& c : captures)
            c->begin_step(s.batch.step);
        const auto r = job.step(s.batch, s.shards, observers);
        step_record rec{s.batch.step, r.seconds, r.loss, r.labelled_tokens};
        out.steps.push_back(rec);
        if (on_step)
            on_step(rec);
    }
    if (captures.empty())
        return out;
    std::int64_t origin = std::numeric_limits<std::int64_t>::max();
    for (const auto& c : captures)
        origin = std::min(origin, c->first_start_ns().value_or(origin));
    if (origin == std::numeric_limits<std::int64_t>::max())
        origin = 0;
    std::vector<std::int64_t> per_rank;
    for (int r = 0; r < l.world_size(); ++r) {
        auto& c = *captures[static_cast<std::size_t>(r)];
        c.rebase(origin);
        write_trace_rank_file(options.trace_dir, r, c.events());
        per_rank.push_back(static_cast<std::int64_t>(c.events().size()));
        out.trace_events += per_rank.back();
    }
    std::vector<sharded_step> batches;
    for (const auto& s : steps)
        batches.push_back({s.batch.step, s.shards});
    write_trace_batches(options.trace_dir, batches);
    trace_meta meta = options.trace_info;
    meta.job_layout = l;
    meta.steps = static_cast<std::int64_t>(steps.size());
    meta.tp_replicated = false;
    meta.batches = std::string(trace_batches_file);
    write_trace_manifest(options.trace_dir, meta, per_rank, &options.trace_manifest_extra);
    return out;
}

run_result run_training(training_backend& backend, communicator& world, const layout& l,
                        const std::vector<training_step>& steps, const run_options& options,
                        const std::function<void(const step_record&)>& on_step) {
    WLB_EXPECTS(world.size() == l.world_size(), "world of {} ranks for layout {}", world.size(),
                l.spec());
    std::optional<trace_capture> capture;
    if (!options.trace_dir.empty())
        capture.emplace(l, world.rank());
    run_result out;
    for (const auto& s : steps) {
        if (capture)
            capture->begin_step(s.batch.step);
        world.barrier();
        const auto t0 = std::chrono::steady_clock::now();
        const auto r = backend.step(s.batch, s.shards, capture ? &*capture : nullptr);
        const double seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        step_record rec{s.batch.step, world_max(world, seconds), r.loss, r.labelled_tokens};
        out.steps.push_back(rec);
        if (on_step)
            on_step(rec);
    }
    if (capture)
        write_trace(world, l, *capture, steps, options, out);
    return out;
}

} // namespace wlb::runtime
