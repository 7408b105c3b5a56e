#include "cli/capture_options.hpp"

namespace wlb::cli {

void add_capture_options(CLI::App& sub, profiler::capture_flags& flags,
                         profiler::inject_config& cap) {
    sub.add_flag("--armed", flags.armed,
                 "Start with capture off; `wlbtune trigger DIR` turns it on for some steps");
    sub.add_option("--capture-range", flags.capture_range,
                   "all (from CUDA's start), or profiler-api (between the job's "
                   "cudaProfilerStart and cudaProfilerStop, as Megatron-LM's --profile calls "
                   "them)");
    sub.add_option("--steps", cap.steps,
                   "Capture this many steps, then stop (0: until the job ends)");
    sub.add_option("--skip-steps", cap.skip_steps, "Let this many steps pass first (warm-up)");
    sub.add_option("--seconds", cap.seconds, "Capture at most this long (0: no limit)");
    sub.add_option("--window-seconds", cap.window_seconds,
                   "A triggered window's length when the job shows no step marker (no NVTX step "
                   "range, no cudaProfilerStart/Stop)");
    sub.add_option("--activities", flags.activities,
                   "Activity kinds: kernel,memcpy,memset,sync or all (kernels always)");
    sub.add_flag("--no-nvtx", flags.no_nvtx, "Ignore the job's NVTX ranges");
    sub.add_option("--step-range", cap.step_range,
                   "Regex: NVTX ranges whose name matches are steps (its first group, when "
                   "digits, is the step id); default: ProfilerStep#N, step, train_step, "
                   "iteration ...");
    sub.add_option("--step-source", flags.step_source,
                   "Where steps come from: auto (NVTX step ranges, else cudaProfilerStart/Stop "
                   "spans, else the period of the NCCL kernels), nvtx, profiler-api, nccl, none");
    sub.add_option("--cupti", cap.cupti_library,
                   "libcupti to load into processes that have none loaded (default: the one "
                   "PyTorch loaded, else libcupti.so.13 on the loader's path, else the toolkit's)");
    sub.add_option("--poll-ms", cap.poll_ms, "How often processes look for a trigger (ms)");
    sub.add_option("--buffer-mb", flags.buffer_mb, "CUPTI activity buffer size (MiB)")
        ->check(CLI::Range(1, 1024));
    sub.add_option("--buffers", cap.max_buffers, "CUPTI activity buffers per process at most")
        ->check(CLI::Range(1, 4096));
    sub.add_option("--max-records", cap.max_records,
                   "Activity records a process keeps at most; more are dropped and counted");
}

} // namespace wlb::cli
