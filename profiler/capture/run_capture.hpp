// The device capture of `wlbtune run --backend cuda` (issue [cuda-run]; design.md: CUPTI activity
// + NVTX ranges on GPUs): one capture_session per rank this process runs (one in a real run,
// every rank of the layout in an emulated one, all sharing the process's one CUPTI source
// through profiler/capture/shared_source.hpp), handed to the device step through the runtime's
// range seam (runtime/trace/capture_ranges.hpp): step > micro-batch > stage > phase > layer,
// mirrored as NVTX ranges in the `wlbtune` domain, every kernel, copy, set, synchronization and
// NCCL kernel tied to the ranges it was issued in.
//
// finish() writes what CUPTI recorded as its own wlbtune.trace/1 directory (source "cupti", one
// file per rank, the run's batches, the capture report of every rank in the manifest) beside
// the run's operation-level trace: the kernel-level view for Perfetto and for `analyze`, whose
// ingestion tells attention and GEMM kernels apart by name.
//
// Best effort: without CUPTI (a build without CUDA, no device, CUPTI refusing) the ranges still
// go to NVTX, the first rank warns once, and finish() writes the empty trace with the reason.
#pragma once

#include "profiler/capture/activity_source.hpp"
#include "profiler/capture/capture_session.hpp"
#include "profiler/capture/range_marker.hpp"
#include "profiler/capture/shared_source.hpp"
#include "runtime/comm/communicator.hpp"
#include "runtime/trace/capture_ranges.hpp"
#include "runtime/trace/trace.hpp"

#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace wlb::profiler {

/// What finish() wrote.
struct run_capture_summary {
    std::string dir;
    std::string source;                ///< "cupti", or "none"
    std::int64_t events = 0;           ///< over every rank of the job
    std::uint64_t dropped = 0;         ///< records CUPTI dropped plus buffers refused, this process
    std::vector<std::string> warnings; ///< this process's
};

class run_capture : public std::enable_shared_from_this<run_capture> {
public:
    /// `source`: the process's capture backend, or none and why; `make_marker` gives each rank
    /// its NVTX marker (may be empty or return null).
    run_capture(source_result source, std::function<std::unique_ptr<range_marker>()> make_marker);
    ~run_capture();
    run_capture(const run_capture&) = delete;
    run_capture& operator=(const run_capture&) = delete;

    /// CUPTI and NVTX where the build and the machine have them (profiler/capture/cuda/ and
    /// no_cuda/).
    [[nodiscard]] static std::shared_ptr<run_capture> make_default(const cupti_options& o = {});

    /// World rank `rank`'s ranges (its session starts now). The capture must outlive them.
    [[nodiscard]] std::unique_ptr<runtime::capture_ranges> ranges(int rank);
    /// ranges() as the factory an emulated job takes (holds the capture alive).
    [[nodiscard]] std::function<std::unique_ptr<runtime::capture_ranges>(int)> factory();

    /// Stops capturing, converts every rank's records of this process and writes them into
    /// `dir` (created) as a wlbtune.trace/1 directory of layout `l` with the steps' batches and
    /// the per-rank capture reports; times start at the job's first record. `world` (null:
    /// every rank of the job is in this process) is collective: the ranks agree on the origin
    /// and world rank 0 writes the manifest once every rank's file is written.
    run_capture_summary finish(const std::string& dir, const runtime::layout& l,
                               const std::vector<runtime::sharded_step>& batches,
                               runtime::communicator* world);

private:
    source_result m_backend;
    std::unique_ptr<shared_activity_source> m_shared;
    std::function<std::unique_ptr<range_marker>()> m_make_marker;
    std::map<int, std::unique_ptr<capture_session>> m_sessions;
};

} // namespace wlb::profiler
