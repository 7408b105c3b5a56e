// The CUPTI capture backend (profiler/capture/activity_source.hpp): the one file that includes
// CUPTI.
//
// Activity kinds enabled: concurrent kernels, memory copies, memory sets, synchronization and
// external correlation (the range context ids the capture session pushes). Buffers come from a
// bounded buffer_pool: when every buffer is out, CUPTI's request is declined and CUPTI drops
// records; both the declined requests and CUPTI's own dropped-record count reach the report.
// CUPTI's callbacks are plain functions, so one source may be active per process at a time.
//
// Buffer lifetime: CUPTI owns a buffer from buffer_requested until it hands it back through
// buffer_completed, and only a flush makes it hand back the buffers it is filling. stop() always
// attempts the forced flush, even when disabling an activity kind failed, and the destructor
// retires the pool under the callbacks' lock: a buffer CUPTI still holds then (a flush that
// failed, or a completion CUPTI delivers later) stays allocated until it comes back
// (buffer_pool::release_retired), so CUPTI never writes into freed memory.
#include "base/error.hpp"
#include "kernels/device_query.hpp"
#include "profiler/capture/activity_source.hpp"
#include "profiler/capture/buffer_pool.hpp"
#include "profiler/capture/cuda/cupti_records.hpp"

#include <cstdlib>
#include <cupti.h>
#include <exception>
#include <memory>
#include <mutex>

namespace wlb::profiler {

namespace {

class cupti_source;

std::mutex g_active_mutex;
cupti_source* g_active = nullptr; // the source CUPTI's callbacks deliver to

constexpr CUpti_ActivityKind enabled_kinds[] = {
    CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL, CUPTI_ACTIVITY_KIND_MEMCPY, CUPTI_ACTIVITY_KIND_MEMSET,
    CUPTI_ACTIVITY_KIND_SYNCHRONIZATION, CUPTI_ACTIVITY_KIND_EXTERNAL_CORRELATION};

class cupti_source final : public activity_source {
public:
    explicit cupti_source(const cupti_options& o)
        : m_pool(std::make_unique<buffer_pool>(o.buffer_bytes, o.max_buffers, 8)) {}

    ~cupti_source() override {
        try {
            if (m_started)
                stop();
        } catch (...) {
            // Destructors never throw; stop() flushed what it could.
        }
        // Under the callbacks' lock: no callback is using this source or its pool, and the
        // buffers CUPTI still holds move to the retired list before any later callback looks.
        std::lock_guard lock(g_active_mutex);
        if (g_active == this)
            g_active = nullptr;
        m_pool.reset();
    }

    std::string_view name() const noexcept override { return "cupti"; }

    void start() override {
        {
            std::lock_guard lock(g_active_mutex);
            if (g_active != nullptr && g_active != this)
                throw runtime_failure("a CUPTI capture is already active in this process");
            g_active = this;
        }
        try {
            WLB_CUPTI_CHECK(cuptiActivityRegisterCallbacks(&buffer_requested, &buffer_completed));
            for (CUpti_ActivityKind kind : enabled_kinds)
                WLB_CUPTI_CHECK(cuptiActivityEnable(kind));
        } catch (...) {
            // Undo what was enabled and take back any buffer CUPTI already requested.
            for (CUpti_ActivityKind kind : enabled_kinds)
                cuptiActivityDisable(kind);
            cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
            throw;
        }
        m_started = true;
    }

    /// Disables every kind and always flushes (forced), so CUPTI hands back every buffer it
    /// holds even when a disable failed; then throws the first failure.
    void stop() override {
        m_started = false;
        std::exception_ptr first;
        for (CUpti_ActivityKind kind : enabled_kinds) {
            try {
                WLB_CUPTI_CHECK(cuptiActivityDisable(kind));
            } catch (...) {
                if (!first)
                    first = std::current_exception();
            }
        }
        try {
            WLB_CUPTI_CHECK(cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED));
        } catch (...) {
            if (!first)
                first = std::current_exception();
        }
        if (first)
            std::rethrow_exception(first);
    }

    void flush() override { WLB_CUPTI_CHECK(cuptiActivityFlushAll(0)); }

    capture_batch drain() override {
        std::lock_guard lock(m_mutex);
        capture_batch out = std::move(m_pending);
        m_pending = capture_batch{};
        const std::uint64_t refused = m_pool->refused();
        out.losses.buffers_refused += refused - m_refused_reported;
        m_refused_reported = refused;
        return out;
    }

    void push_context(std::uint64_t context_id) override {
        WLB_CUPTI_CHECK(cuptiActivityPushExternalCorrelationId(
            CUPTI_EXTERNAL_CORRELATION_KIND_CUSTOM0, context_id));
    }

    void pop_context() override {
        std::uint64_t last = 0;
        WLB_CUPTI_CHECK(
            cuptiActivityPopExternalCorrelationId(CUPTI_EXTERNAL_CORRELATION_KIND_CUSTOM0, &last));
    }

    std::int64_t now_ns() override {
        std::uint64_t t = 0;
        WLB_CUPTI_CHECK(cuptiGetTimestamp(&t));
        return static_cast<std::int64_t>(t);
    }

    std::uint32_t stream_id(void* stream) override {
        std::uint32_t id = 0;
        WLB_CUPTI_CHECK(cuptiGetStreamIdEx(nullptr, static_cast<CUstream>(stream), 0, &id));
        return id;
    }

private:
    // CUPTI's callbacks hold g_active_mutex while they use the active source or its pool, so the
    // destructor (which takes it too) cannot free either under them.
    static void CUPTIAPI buffer_requested(std::uint8_t** buffer, std::size_t* size,
                                          std::size_t* max_records) {
        *max_records = 0;
        std::uint8_t* b = nullptr;
        std::size_t bytes = 0;
        try {
            std::lock_guard lock(g_active_mutex);
            if (g_active != nullptr && g_active->m_pool != nullptr) {
                b = g_active->m_pool->acquire();
                bytes = g_active->m_pool->buffer_bytes();
            }
        } catch (...) {
            b = nullptr; // out of memory: decline
        }
        *buffer = b; // nullptr declines: CUPTI drops records and counts them
        *size = b != nullptr ? bytes : 0;
    }

    static void CUPTIAPI buffer_completed(CUcontext context, std::uint32_t stream_id,
                                          std::uint8_t* buffer, std::size_t /*size*/,
                                          std::size_t valid) {
        if (buffer == nullptr)
            return;
        try {
            // The buffer stays allocated until it is released below (a pool destroyed meanwhile
            // retires it instead of freeing it), so it is read without the lock, and no CUPTI
            // call runs under g_active_mutex (CUPTI may hold its own locks when it asks for a
            // buffer, which takes g_active_mutex).
            capture_batch local;
            CUpti_Activity* record = nullptr;
            while (valid > 0 && cuptiActivityGetNextRecord(buffer, valid, &record) == CUPTI_SUCCESS)
                parse_cupti_record(record, local);
            std::size_t dropped = 0;
            if (cuptiActivityGetNumDroppedRecords(context, stream_id, &dropped) == CUPTI_SUCCESS)
                local.losses.dropped_records += dropped;
            std::lock_guard lock(g_active_mutex);
            cupti_source* s = g_active;
            if (s == nullptr || s->m_pool == nullptr || !s->m_pool->lent(buffer)) {
                // A buffer of a source already destroyed: no one reads its records any more.
                buffer_pool::release_retired(buffer);
                return;
            }
            s->m_pool->release(buffer);
            std::lock_guard pending_lock(s->m_mutex);
            s->m_pending.append(std::move(local));
        } catch (...) {
            // A callback must not throw into CUPTI; the records of this buffer are lost.
        }
    }

    std::unique_ptr<buffer_pool> m_pool; // reset by the destructor under g_active_mutex
    std::mutex m_mutex;
    capture_batch m_pending;
    std::uint64_t m_refused_reported = 0;
    bool m_started = false;
};

} // namespace

source_result make_cupti_source(const cupti_options& options) {
    const auto devices = kernels::query_devices();
    if (devices.devices.empty())
        return {nullptr, devices.reason};
    try {
        return {std::make_unique<cupti_source>(options), {}};
    } catch (const std::exception& e) {
        return {nullptr, e.what()};
    }
}

} // namespace wlb::profiler
