// Device memory, streams and event timing for the CUDA kernels' host interface
// (kernels/cuda_ops.hpp), on the CUDA runtime.
#include "base/error.hpp"
#include "kernels/cuda_ops.hpp"

#include <cuda_runtime_api.h>
#include <utility>

namespace wlb::kernels::cuda {

void set_device(int device) {
    WLB_CUDA_CHECK(cudaSetDevice(device));
}

void synchronize_device() {
    WLB_CUDA_CHECK(cudaDeviceSynchronize());
}

void synchronize(stream_t stream) {
    WLB_CUDA_CHECK(cudaStreamSynchronize(stream));
}

device_buffer::device_buffer(std::size_t bytes) : m_bytes(bytes) {
    if (bytes > 0)
        WLB_CUDA_CHECK(cudaMalloc(&m_data, bytes));
}

device_buffer::~device_buffer() {
    if (m_data != nullptr)
        cudaFree(m_data); // never throws; a failure here has nowhere to go
}

device_buffer::device_buffer(device_buffer&& other) noexcept
    : m_data(std::exchange(other.m_data, nullptr)), m_bytes(std::exchange(other.m_bytes, 0)) {}

device_buffer& device_buffer::operator=(device_buffer&& other) noexcept {
    if (this != &other) {
        if (m_data != nullptr)
            cudaFree(m_data);
        m_data = std::exchange(other.m_data, nullptr);
        m_bytes = std::exchange(other.m_bytes, 0);
    }
    return *this;
}

void device_buffer::reserve_discard(std::size_t bytes) {
    if (bytes <= m_bytes)
        return;
    *this = device_buffer(bytes);
}

// cudaMemcpy would run on the legacy default stream, which does not wait for the work of
// non-blocking streams (every stream of ours) and, from pageable memory, may return before the
// data has landed: a kernel queued right after on a non-blocking stream could read it half
// written, and an upload could overwrite data a queued kernel still reads. So both directions go
// through cudaMemcpyAsync on the stream that uses the data.
void copy_to_device(void* device_dst, const void* host_src, std::size_t bytes, stream_t stream) {
    if (bytes > 0)
        WLB_CUDA_CHECK(
            cudaMemcpyAsync(device_dst, host_src, bytes, cudaMemcpyHostToDevice, stream));
}

void copy_to_host(void* host_dst, const void* device_src, std::size_t bytes, stream_t stream) {
    if (bytes == 0)
        return;
    WLB_CUDA_CHECK(cudaMemcpyAsync(host_dst, device_src, bytes, cudaMemcpyDeviceToHost, stream));
    WLB_CUDA_CHECK(cudaStreamSynchronize(stream));
}

void fill_zero(void* device_dst, std::size_t bytes, stream_t stream) {
    if (bytes > 0)
        WLB_CUDA_CHECK(cudaMemsetAsync(device_dst, 0, bytes, stream));
}

stream::stream() {
    WLB_CUDA_CHECK(cudaStreamCreateWithFlags(&m_stream, cudaStreamNonBlocking));
}

stream::~stream() {
    if (m_stream != nullptr)
        cudaStreamDestroy(m_stream);
}

struct event_timer::impl {
    cudaEvent_t start = nullptr;
    cudaEvent_t stop = nullptr;
};

event_timer::event_timer() : m_impl(std::make_unique<impl>()) {
    WLB_CUDA_CHECK(cudaEventCreate(&m_impl->start));
    WLB_CUDA_CHECK(cudaEventCreate(&m_impl->stop));
}

event_timer::~event_timer() {
    if (m_impl->start != nullptr)
        cudaEventDestroy(m_impl->start);
    if (m_impl->stop != nullptr)
        cudaEventDestroy(m_impl->stop);
}

void event_timer::start(stream_t stream) {
    WLB_CUDA_CHECK(cudaEventRecord(m_impl->start, stream));
}

void event_timer::stop(stream_t stream) {
    WLB_CUDA_CHECK(cudaEventRecord(m_impl->stop, stream));
}

double event_timer::seconds() const {
    WLB_CUDA_CHECK(cudaEventSynchronize(m_impl->stop));
    float ms = 0;
    WLB_CUDA_CHECK(cudaEventElapsedTime(&ms, m_impl->start, m_impl->stop));
    return static_cast<double>(ms) * 1e-3;
}

} // namespace wlb::kernels::cuda
