#include "profiler/capture/buffer_pool.hpp"

#include "base/error.hpp"

#include <algorithm>
#include <cstdlib>
#include <new>

namespace wlb::profiler {

namespace {

struct retired_buffer {
    std::uint8_t* data = nullptr;
    std::size_t alignment = 8;
};

/// The process-wide list of retired buffers. Never destroyed (a holder may hand a buffer back
/// from an exit handler, after static destruction began), so it is created once and leaked.
struct retired_list {
    std::mutex mutex;
    std::vector<retired_buffer> buffers;
};

retired_list& retired() {
    static auto* list = new retired_list;
    return *list;
}

void free_buffer(std::uint8_t* b, std::size_t alignment) noexcept {
    ::operator delete(b, std::align_val_t(alignment));
}

} // namespace

buffer_pool::buffer_pool(std::size_t buffer_bytes, int max_buffers, std::size_t alignment)
    : m_bytes(buffer_bytes), m_max(max_buffers), m_alignment(alignment) {
    WLB_EXPECTS(buffer_bytes > 0 && max_buffers > 0, "buffer pool of {} buffers of {} bytes",
                max_buffers, buffer_bytes);
    WLB_EXPECTS(alignment > 0 && (alignment & (alignment - 1)) == 0,
                "buffer alignment {} is not a power of two", alignment);
}

buffer_pool::~buffer_pool() {
    std::lock_guard lock(m_mutex);
    for (std::uint8_t* b : m_all) {
        if (std::find(m_free.begin(), m_free.end(), b) != m_free.end()) {
            free_buffer(b, m_alignment);
            continue;
        }
        try {
            auto& list = retired();
            std::lock_guard retired_lock(list.mutex);
            list.buffers.push_back({b, m_alignment});
        } catch (...) {
            // Out of memory for the list entry: the buffer stays allocated and unlisted (a
            // leak), never freed under its holder.
        }
    }
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

bool buffer_pool::lent(const std::uint8_t* buffer) const {
    std::lock_guard lock(m_mutex);
    return std::find(m_all.begin(), m_all.end(), buffer) != m_all.end() &&
           std::find(m_free.begin(), m_free.end(), buffer) == m_free.end();
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

bool buffer_pool::release_retired(std::uint8_t* buffer) noexcept {
    auto& list = retired();
    std::lock_guard lock(list.mutex);
    auto it = std::find_if(list.buffers.begin(), list.buffers.end(),
                           [&](const retired_buffer& r) { return r.data == buffer; });
    if (it == list.buffers.end())
        return false;
    free_buffer(it->data, it->alignment);
    list.buffers.erase(it);
    return true;
}

std::size_t buffer_pool::retired_count() noexcept {
    auto& list = retired();
    std::lock_guard lock(list.mutex);
    return list.buffers.size();
}

} // namespace wlb::profiler
