// wlbtune's own trace directories (wlbtune.trace/1, runtime/trace.hpp), read one rank at a time
// through runtime::trace_reader. Event names of the simulator and the captures say what the
// work is: "attention fwd/bwd" (attention); "linear fwd/bwd" (the simulator) and the CPU
// runtime's GEMM ops "qkv proj", "out proj", "mlp" (linear); anything else on the compute lane
// (norms, output layer, optimizer step) is other compute.
#include "profiler/ingest.hpp"
#include "runtime/error.hpp"

#include <algorithm>
#include <filesystem>
#include <fmt/format.h>
#include <unordered_map>

namespace wlb::profiler {
work_class wlbtune_work_of(std::string_view name) {
    if (name.starts_with("attention"))
        return work_class::attention;
    for (const std::string_view gemm : {"linear", "qkv proj", "out proj", "mlp fwd", "mlp bwd"})
        if (name.starts_with(gemm))
            return work_class::linear;
    return work_class::other;
}

namespace {

std::int16_t narrow16(int v) {
    return static_cast<std::int16_t>(std::clamp(v, -1, 32767));
}

// Turns trace events into job events, remembering the work class of each name.
class converter {
public:
    explicit converter(job_trace& job) : m_job(job) {}
    void add(std::vector<job_event>& out, const runtime::trace_event& t) {
        job_event e;
        e.start_ns = t.start_ns;
        e.dur_ns = t.dur_ns;
        e.bytes = t.bytes.value_or(0.0);
        e.name = m_job.names.intern(t.name);
        e.step = static_cast<std::int32_t>(t.step);
        e.micro_batch = narrow16(t.micro_batch);
        e.virtual_stage = narrow16(t.virtual_stage);
        e.where = t.where;
        e.kind = t.kind;
        e.ph = t.ph;
        if (t.kind == runtime::event_kind::compute) {
            auto it = m_work.find(e.name);
            if (it == m_work.end())
                it = m_work.emplace(e.name, wlbtune_work_of(t.name)).first;
            e.work = it->second;
        }
        e.stream = static_cast<std::int32_t>(t.where);
        out.push_back(e);
    }

private:
    job_trace& m_job;
    std::unordered_map<std::int32_t, work_class> m_work;
};

void take_meta(job_trace& job, const runtime::trace_meta& meta) {
    job.source_layout = meta.job_layout.spec();
    job.source_order = meta.job_layout.order_string();
    job.source_world_size = std::max(job.source_world_size, meta.job_layout.world_size());
    job.tp_replicated = job.tp_replicated || meta.tp_replicated;
    if (!meta.note.empty())
        job.note = meta.note;
    job.source = meta.source;
    if (static_cast<int>(job.ranks.size()) < meta.job_layout.world_size())
        job.ranks.resize(static_cast<std::size_t>(meta.job_layout.world_size()));
}

} // namespace

void read_wlbtune_dir(const std::string& dir, job_trace& job) {
    const runtime::trace_reader reader(dir);
    take_meta(job, reader.meta());
    job.files.push_back(dir);
    if (!reader.meta().batches.empty()) {
        // The batches only serve the check against predicted work: a bad file loses that check,
        // not the analysis.
        try {
            auto batches = reader.read_batches();
            job.batches.insert(job.batches.end(), std::make_move_iterator(batches.begin()),
                               std::make_move_iterator(batches.end()));
            job.batches_file = (std::filesystem::path(dir) / reader.meta().batches).string();
        } catch (const std::exception& e) {
            job.warn((std::filesystem::path(dir) / reader.meta().batches).string(),
                     fmt::format("{}; lost time is not set against the batches' predicted work",
                                 e.what()));
        }
    }
    converter conv(job);
    for (int r : reader.ranks()) {
        auto& rt = job.ranks[static_cast<std::size_t>(r)];
        const std::string file = fmt::format("{}/rank_{:05d}.jsonl", dir, r);
        if (rt.present) {
            job.warn(file, fmt::format("rank {} was already read from {}; left out", r, rt.file));
            continue;
        }
        rt.present = true;
        rt.file = file;
        reader.read_rank(r, [&](runtime::trace_event&& t) { conv.add(rt.events, t); });
        std::error_code ec;
        const auto bytes = std::filesystem::file_size(rt.file, ec);
        if (!ec)
            job.input_bytes += static_cast<std::int64_t>(bytes);
    }
}

void read_trace(const runtime::trace& t, job_trace& job) {
    take_meta(job, t.meta);
    converter conv(job);
    for (std::size_t r = 0; r < t.ranks.size(); ++r) {
        if (t.ranks[r].empty())
            continue;
        auto& rt = job.ranks[r];
        rt.present = true;
        rt.file = fmt::format("(in memory) rank {}", r);
        rt.events.reserve(t.ranks[r].size());
        for (const auto& e : t.ranks[r])
            conv.add(rt.events, e);
    }
    job.batches.insert(job.batches.end(), t.batches.begin(), t.batches.end());
}

} // namespace wlb::profiler
