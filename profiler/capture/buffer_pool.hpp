// A bounded pool of fixed-size activity buffers (style.md: profiling is best effort, bounded):
// at most `max_buffers` are handed out at once, each released buffer is reused, and a request
// beyond the bound is refused and counted, so capture never grows without limit; the backend
// then drops records and counts them. Thread-safe (CUPTI requests and returns buffers from its
// own threads).
//
// A buffer still out when the pool is destroyed is not freed: its holder (CUPTI, after a stop
// that failed before its flush) may still write records into it. It is retired instead: kept
// allocated in a process-wide list until its holder hands it back through release_retired(),
// which frees it. At worst (a holder that never returns it) that leaks max_buffers x
// buffer_bytes once, which is bounded; freeing it would be a use-after-free.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

namespace wlb::profiler {

class buffer_pool {
public:
    /// Buffers of `buffer_bytes` (> 0) aligned to `alignment` (a power of two).
    buffer_pool(std::size_t buffer_bytes, int max_buffers, std::size_t alignment = 8);
    /// Frees the buffers at home and retires the ones still out (see above).
    ~buffer_pool();
    buffer_pool(const buffer_pool&) = delete;
    buffer_pool& operator=(const buffer_pool&) = delete;

    /// A free buffer (reused or newly allocated), or nullptr when `max_buffers` are out.
    [[nodiscard]] std::uint8_t* acquire();
    /// Returns a buffer from acquire(); throws wlb::internal_error for any other pointer.
    void release(std::uint8_t* buffer);
    /// Whether `buffer` came from this pool's acquire() and has not been released yet.
    [[nodiscard]] bool lent(const std::uint8_t* buffer) const;

    [[nodiscard]] std::size_t buffer_bytes() const noexcept { return m_bytes; }
    [[nodiscard]] int max_buffers() const noexcept { return m_max; }
    [[nodiscard]] int outstanding() const;
    [[nodiscard]] int allocated() const; ///< buffers ever allocated (<= max_buffers)
    [[nodiscard]] std::uint64_t refused() const;

    /// Frees a buffer that was out when its pool was destroyed; false (and nothing freed) when
    /// `buffer` is not such a buffer. Any thread, any time, also after static destruction began.
    static bool release_retired(std::uint8_t* buffer) noexcept;
    /// Retired buffers not handed back yet, over every pool of the process.
    [[nodiscard]] static std::size_t retired_count() noexcept;

private:
    std::size_t m_bytes;
    int m_max;
    std::size_t m_alignment;
    mutable std::mutex m_mutex;
    std::vector<std::uint8_t*> m_all;
    std::vector<std::uint8_t*> m_free;
    std::uint64_t m_refused = 0;
};

} // namespace wlb::profiler
