#include "profiler/capture/cuda/cupti_records.hpp"

#include <cstdlib>
#include <cxxabi.h>
#include <string>

namespace wlb::profiler {

namespace {

std::string demangle(const char* name) {
    if (name == nullptr)
        return "unknown kernel";
    int status = 0;
    char* out = abi::__cxa_demangle(name, nullptr, nullptr, &status);
    std::string result = status == 0 && out != nullptr ? std::string(out) : std::string(name);
    std::free(out);
    return result;
}

const char* memcpy_name(std::uint8_t kind) {
    switch (kind) {
    case CUPTI_ACTIVITY_MEMCPY_KIND_HTOD:
        return "memcpy HtoD";
    case CUPTI_ACTIVITY_MEMCPY_KIND_DTOH:
        return "memcpy DtoH";
    case CUPTI_ACTIVITY_MEMCPY_KIND_DTOD:
        return "memcpy DtoD";
    case CUPTI_ACTIVITY_MEMCPY_KIND_HTOH:
        return "memcpy HtoH";
    case CUPTI_ACTIVITY_MEMCPY_KIND_PTOP:
        return "memcpy PtoP";
    default:
        return "memcpy (array)";
    }
}

const char* sync_name(CUpti_ActivitySynchronizationType type) {
    switch (type) {
    case CUPTI_ACTIVITY_SYNCHRONIZATION_TYPE_EVENT_SYNCHRONIZE:
        return "sync event";
    case CUPTI_ACTIVITY_SYNCHRONIZATION_TYPE_STREAM_WAIT_EVENT:
        return "stream wait event";
    case CUPTI_ACTIVITY_SYNCHRONIZATION_TYPE_STREAM_SYNCHRONIZE:
        return "sync stream";
    case CUPTI_ACTIVITY_SYNCHRONIZATION_TYPE_CONTEXT_SYNCHRONIZE:
        return "sync context";
    default:
        return "sync";
    }
}

} // namespace

void parse_cupti_record(const CUpti_Activity* record, capture_batch& out) {
    switch (record->kind) {
    case CUPTI_ACTIVITY_KIND_KERNEL:
    case CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL: {
        const auto* k = reinterpret_cast<const CUpti_ActivityKernel10*>(record);
        out.activities.push_back(
            {activity_kind::kernel, demangle(k->name), static_cast<std::int64_t>(k->start),
             static_cast<std::int64_t>(k->end), k->deviceId, k->streamId, k->correlationId, 0});
        return;
    }
    case CUPTI_ACTIVITY_KIND_MEMCPY: {
        const auto* m = reinterpret_cast<const CUpti_ActivityMemcpy6*>(record);
        out.activities.push_back({activity_kind::memcpy, memcpy_name(m->copyKind),
                                  static_cast<std::int64_t>(m->start),
                                  static_cast<std::int64_t>(m->end), m->deviceId, m->streamId,
                                  m->correlationId, static_cast<std::int64_t>(m->bytes)});
        return;
    }
    case CUPTI_ACTIVITY_KIND_MEMSET: {
        const auto* m = reinterpret_cast<const CUpti_ActivityMemset4*>(record);
        out.activities.push_back({activity_kind::memset, "memset",
                                  static_cast<std::int64_t>(m->start),
                                  static_cast<std::int64_t>(m->end), m->deviceId, m->streamId,
                                  m->correlationId, static_cast<std::int64_t>(m->bytes)});
        return;
    }
    case CUPTI_ACTIVITY_KIND_SYNCHRONIZATION: {
        const auto* s = reinterpret_cast<const CUpti_ActivitySynchronization2*>(record);
        out.activities.push_back({activity_kind::synchronization, sync_name(s->type),
                                  static_cast<std::int64_t>(s->start),
                                  static_cast<std::int64_t>(s->end), 0, s->streamId,
                                  s->correlationId, 0});
        return;
    }
    case CUPTI_ACTIVITY_KIND_EXTERNAL_CORRELATION: {
        const auto* x = reinterpret_cast<const CUpti_ActivityExternalCorrelation*>(record);
        if (x->externalKind == CUPTI_EXTERNAL_CORRELATION_KIND_CUSTOM0)
            out.links.push_back({x->correlationId, x->externalId});
        return;
    }
    default:
        ++out.losses.unsupported_records;
    }
}

} // namespace wlb::profiler
