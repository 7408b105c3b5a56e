// GPU tier: host-to-device uploads are ordered on the stream that uses the data
// (kernels/cuda_ops.hpp copy_to_device, device_array, attention_plan). A host function holds a
// non-blocking stream closed (as a long kernel would) while an upload is queued on it; the
// buffer, read through a second stream while the first is still held, must still hold the old
// values: the upload may not overtake the work queued before it. (A plain cudaMemcpy runs on the
// legacy default stream, which does not wait for non-blocking streams, and would overtake it.)
// An attention plan uploaded on a held stream must not be read by a launch on another stream
// before the upload lands. Skips with the reason without a CUDA device.
#include "kernels/cuda_ops.hpp"
#include "kernels/ops.hpp"
#include "support/gpu_test.hpp"

#include <atomic>
#include <chrono>
#include <cmath>
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>
#include <thread>
#include <vector>

namespace k = wlb::kernels;
namespace kc = wlb::kernels::cuda;
using ix = k::index;

namespace {

/// Holds a stream closed from a host function until open() or a deadline (so a driver that
/// stages pageable copies by waiting for the stream cannot deadlock the test).
class stream_gate {
public:
    explicit stream_gate(kc::stream_t stream) {
        m_launched = cudaLaunchHostFunc(stream, &stream_gate::hold, this) == cudaSuccess;
        EXPECT_TRUE(m_launched);
    }
    /// Opens the gate and waits for the host function to let go of this object.
    ~stream_gate() {
        open();
        while (m_launched && !m_done)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    stream_gate(const stream_gate&) = delete;
    stream_gate& operator=(const stream_gate&) = delete;
    void open() { m_open = true; }
    /// Whether the host function still holds the stream.
    [[nodiscard]] bool holding() const { return !m_done; }

private:
    static void hold(void* self) {
        auto* g = static_cast<stream_gate*>(self);
        const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (!g->m_open && std::chrono::steady_clock::now() < until)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        g->m_done = true;
    }
    std::atomic<bool> m_open{false};
    std::atomic<bool> m_done{false};
    bool m_launched = false;
};

TEST(CudaUploads, AnUploadWaitsForTheWorkQueuedBeforeItOnItsStream) {
    WLB_REQUIRE_GPU();
    const std::size_t n = 1 << 16;
    const std::vector<std::int64_t> before(n, 7), after(n, 11);
    kc::stream held, reader;
    kc::device_array<std::int64_t> buffer(before, held.get());
    kc::synchronize(held.get());

    // The read goes to pinned memory through a stream nothing holds, so it needs none of the
    // runtime's staging buffers, which the pending upload may occupy.
    void* pinned = nullptr;
    ASSERT_EQ(cudaMallocHost(&pinned, n * sizeof(std::int64_t)), cudaSuccess);
    auto* seen_pinned = static_cast<std::int64_t*>(pinned);
    stream_gate gate(held.get());
    buffer.upload(after, held.get());
    kc::copy_to_host(seen_pinned, buffer.data(), n * sizeof(std::int64_t), reader.get());
    const bool held_during_read = gate.holding();
    const std::vector<std::int64_t> seen(seen_pinned, seen_pinned + n);
    gate.open();
    kc::synchronize(held.get());
    cudaFreeHost(seen_pinned); // may synchronize the device: only once the gate is open
    if (held_during_read)
        EXPECT_EQ(seen, before) << "the upload ran before the work queued ahead of it on its "
                                   "stream (it is not ordered on that stream)";
    else
        std::printf("note: the driver staged the pageable upload by waiting for its stream; "
                    "the read could not observe the order\n");
    EXPECT_EQ(buffer.download(held.get()), after) << "the upload did land after the gate";
}

TEST(CudaUploads, APlanUploadedOnAHeldStreamIsNotReadBeforeItLands) {
    WLB_REQUIRE_GPU();
    const ix n = 300, heads = 2, d = 64, width = heads * d;
    const std::vector<ix> cu = {0, 1, 129, n}, offsets = {0, 0, 0};
    k::attention_chunks chunks;
    chunks.cu_seqlens_q = cu;
    chunks.cu_seqlens_k = cu;
    chunks.q_offsets = offsets;
    chunks.heads = heads;
    chunks.head_dim = d;
    chunks.scale = 1.0 / std::sqrt(static_cast<double>(d));
    const auto nn = static_cast<std::size_t>(n * width);
    auto q = wlb::test::random_bf16(nn, 1), kk = wlb::test::random_bf16(nn, 2);
    auto v = wlb::test::random_bf16(nn, 3);
    std::vector<float> out_ref(nn), lse_ref(static_cast<std::size_t>(n * heads));
    k::attention_forward<float>(chunks, q.values.data(), width, kk.values.data(), width,
                                v.values.data(), width, out_ref.data(), width, lse_ref.data());

    kc::stream held, compute;
    kc::device_array<k::bf16> q_d(q.bits, compute.get()), k_d(kk.bits, compute.get());
    kc::device_array<k::bf16> v_d(v.bits, compute.get()), out_d(nn);
    kc::device_array<float> lse_d(lse_ref.size());
    stream_gate gate(held.get());
    const kc::attention_plan plan(chunks, kc::attention_variant::mma, held.get());
    kc::attention_forward(plan, q_d.data(), width, k_d.data(), width, v_d.data(), width,
                          out_d.data(), width, lse_d.data(), compute.get());
    // Give a forward that does not wait for the plan's upload time to run on an empty table.
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    gate.open();
    kc::synchronize(compute.get());
    EXPECT_LT(
        wlb::test::relative_error(wlb::test::to_float(out_d.download(compute.get())), out_ref),
        wlb::test::bf16_tolerance);
    EXPECT_LT(wlb::test::relative_error(lse_d.download(compute.get()), lse_ref),
              wlb::test::bf16_tolerance);
}

} // namespace
