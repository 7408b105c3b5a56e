#include "profiler/capture/buffer_pool.hpp"

#include "base/error.hpp"

#include <algorithm>
#include <cstdlib>
#include <new>

namespace wlb::profiler {

buffer_pool::buffer_pool(std::size_t buffer_bytes, int max_buffers, std::size_t alignment)
    : m_bytes(buffer_bytes), m_max(max_buffers), m_alignment(alignment) {
    WLB_EXPECTS(buffer_bytes > 0 && max_buffers > 0, "buffer pool of {} buffers of {} bytes",
                max_buffers, buffer_bytes);
    WLB_EXPECTS(alignment > 0 && (alignment & (alignment - 1)) == 0,
                "buffer alignment {} is not a power of two", alignment);
}

buffer_pool::~buffer_pool() {
    for (std::uint8_t* b : m_all)
        ::operator delete(b, std::align_val_t(m_alignment));
}

std::uint8_t* buffer_pool::acquire() {
    std::lock_guard lock(m_mutex);
    if (!m_free.empty()) {
        std::uint8_t* b = m_free.back();
        m_free.pop_back();
        return b;
    }
    if (static_cast<int>(m_all.size()) >= m_max) {
        ++m_refused;
        return nullptr;
    }
    auto* b = static_cast<std::uint8_t*>(::operator new(m_bytes, std::align_val_t(m_alignment)));
    m_all.push_back(b);
    return b;
}

void buffer_pool::release(std::uint8_t* buffer) {
    std::lock_guard lock(m_mutex);
    WLB_EXPECTS(std::find(m_all.begin(), m_all.end(), buffer) != m_all.end() &&
                    std::find(m_free.begin(), m_free.end(), buffer) == m_free.end(),
                "buffer pool: release of a buffer it did not hand out");
    m_free.push_back(buffer);
}

int buffer_pool::outstanding() const {
    std::lock_guard lock(m_mutex);
    return static_cast<int>(m_all.size() - m_free.size());
}

int buffer_pool::allocated() const {
    std::lock_guard lock(m_mutex);
    return static_cast<int>(m_all.size());
}

std::uint64_t buffer_pool::refused() const {
    std::lock_guard lock(m_mutex);
    return m_refused;
}

} // namespace wlb::profiler
