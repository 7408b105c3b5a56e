// Fake captures for tests of the injection library's host core and of analyze on job captures:
// a synthetic job's device activity (steps of compute and NCCL kernels with the host's idle gap
// between steps), and a process as the injection's edge drives its recorder (NVTX ranges on the
// main thread whose kernels are linked, a backward issued from another thread, NCCL kernels on a
// stream of their own).
#pragma once

#include "profiler/capture/activity.hpp"
#include "profiler/capture/inject/process_capture.hpp"

#include <string>
#include <utility>
#include <vector>

namespace wlb::test {

namespace pf = wlb::profiler;

struct synthetic_job {
    std::vector<pf::device_activity> activities;
    std::vector<std::int64_t> step_starts; ///< where each step's first kernel starts
    std::vector<std::int64_t> idle;        ///< the host gap before each step: [begin, end)
};

/// `steps` steps of: a warm-up kernel once, then per step a compute kernel and the NCCL kernels
/// `pattern` each after `layer_ns` of compute, then an optimizer kernel and `gap_ns` of idle.
inline synthetic_job make_job(int steps, const std::vector<std::string>& pattern,
                              std::int64_t layer_ns, std::int64_t gap_ns, bool warm_up_nccl) {
    synthetic_job j;
    std::int64_t t = 1'000;
    std::uint32_t corr = 1;
    auto kernel = [&](std::string name, std::int64_t dur, std::uint32_t stream) {
        j.activities.push_back(
            {pf::activity_kind::kernel, std::move(name), t, t + dur, 0, stream, corr++, 0});
        t += dur;
    };
    if (warm_up_nccl)
        kernel("ncclDevKernel_Broadcast_RING_LL(args)", 500, 9);
    kernel("init_weights(float*)", 2'000, 7);
    for (int s = 0; s < steps; ++s) {
        const std::int64_t idle_begin = t;
        t += gap_ns;
        j.idle.push_back(idle_begin);
        j.step_starts.push_back(t);
        for (const auto& name : pattern) {
            kernel("sm90_xmma_gemm_bf16(args)", layer_ns, 7);
            kernel(name + "(ncclDevKernelArgsStorage<4096ul>)", 200, 9);
        }
        kernel("multi_tensor_apply_kernel<adam>(args)", 300, 7);
    }
    return j;
}

/// A process as the edge drives it: NVTX ranges on the main thread (kernels launched there are
/// linked through the context id push() returned), a backward on another thread (no link), NCCL
/// kernels on their own stream.
struct fake_process {
    pf::process_recorder rec;
    std::int64_t now = 1'000;
    std::uint32_t corr = 0;
    pf::capture_batch batch;

    /// `slow` stretches the attention and GEMM kernels (a straggler); `ranges`: NVTX forward,
    /// backward and optimizer ranges.
    explicit fake_process(pf::inject_config c, int rank = 3, long pid = 4711, double slow = 1.0,
                          bool ranges = true)
        : rec(std::move(c), meta(rank, pid)), m_slow(slow), m_ranges(ranges) {}
    double m_slow = 1.0;
    bool m_ranges = true;

    static pf::process_meta meta(int rank, long pid) {
        pf::process_meta m;
        m.who.rank = rank;
        m.who.world_size = 2;
        m.who.launcher = "torchrun";
        m.pid = pid;
        m.host = "node7";
        m.command = {"python", "train.py"};
        return m;
    }
    void kernel(const std::string& name, std::uint64_t context, std::uint32_t stream = 7,
                std::int64_t dur = 100) {
        const auto c = ++corr;
        batch.activities.push_back(
            {pf::activity_kind::kernel, name, now, now + dur, 0, stream, c, 0});
        if (context != 0)
            batch.links.push_back({c, context});
        now += dur + 10;
    }
    /// One training step: two micro-batches of forward (main thread, linked) and backward
    /// (kernels issued from another thread: not linked), an all-reduce, the optimizer.
    void step() {
        const auto s = rec.nvtx().push(1, "train_step", now);
        now += 50;
        const auto attention = static_cast<std::int64_t>(100 * m_slow);
        const auto gemm = static_cast<std::int64_t>(100 * m_slow);
        for (int mb = 0; mb < 2; ++mb) {
            const auto f = m_ranges ? rec.nvtx().push(1, "forward", now) : 0;
            kernel("flash_fwd_kernel<Flash_fwd_kernel_traits<128>>(params)", f, 7, attention);
            kernel("sm90_xmma_gemm_bf16bf16_bf16f32(args)", f, 7, gemm);
            if (m_ranges)
                rec.nvtx().pop(1, now);
            now += 10;
            if (m_ranges)
                rec.nvtx().push(1, "backward", now);
            kernel("flash_bwd_dq_dk_dv_loop_kernel<traits>(params)", 0, 7, 2 * attention);
            kernel("sm90_xmma_gemm_bf16bf16_bf16f32(args)", 0, 7, gemm);
            if (m_ranges)
                rec.nvtx().pop(1, now);
            now += 10;
        }
        kernel("ncclDevKernel_AllReduce_Sum_bf16_RING_LL(args)", s, 9);
        const auto o = m_ranges ? rec.nvtx().push(1, "optimizer", now) : 0;
        kernel("multi_tensor_apply_kernel(args)", o);
        if (m_ranges)
            rec.nvtx().pop(1, now);
        rec.nvtx().pop(1, now);
        now += 1'000;
        rec.add(std::exchange(batch, pf::capture_batch{}));
    }
};

} // namespace wlb::test
