// CUPTI loaded at run time (dlopen) by the injection library: a job that cannot load it keeps
// running, without capture, and is told why; a process that already loaded CUPTI (PyTorch links
// it) shares that one copy, since two copies of CUPTI in one process would each think it owns
// the device's tracing.
#pragma once

#include <cupti.h>
#include <string>

namespace wlb::profiler {

struct cupti_api {
    void* handle = nullptr;
    std::string path;          ///< where it was found
    std::uint32_t version = 0; ///< cuptiGetVersion (the API version, e.g. 130001)

    decltype(&cuptiGetResultString) get_result_string = nullptr;
    decltype(&cuptiGetVersion) get_version = nullptr;
    decltype(&cuptiSubscribe) subscribe = nullptr;
    decltype(&cuptiSubscribe_v2) subscribe_v2 = nullptr; ///< may be null (older CUPTI)
    decltype(&cuptiUnsubscribe) unsubscribe = nullptr;
    decltype(&cuptiEnableCallback) enable_callback = nullptr;
    decltype(&cuptiActivityRegisterCallbacks) register_callbacks = nullptr;
    decltype(&cuptiActivityEnable) enable = nullptr;
    decltype(&cuptiActivityDisable) disable = nullptr;
    decltype(&cuptiActivityFlushAll) flush_all = nullptr;
    decltype(&cuptiActivityGetNextRecord) next_record = nullptr;
    decltype(&cuptiActivityGetNumDroppedRecords) dropped_records = nullptr;
    decltype(&cuptiActivityPushExternalCorrelationId) push_external = nullptr;
    decltype(&cuptiActivityPopExternalCorrelationId) pop_external = nullptr;

    /// "CUPTI 13.0 (API 130001) from PATH".
    [[nodiscard]] std::string describe() const;
    /// "CUPTI_ERROR_...: text" for a result code.
    [[nodiscard]] std::string result_text(CUptiResult r) const;
};

/// Loads CUPTI: the copy already in the process first (by soname, without loading another),
/// then `configured` (WLBTUNE_CUPTI_LIBRARY), then the loader's search for the soname, then the
/// toolkit's copy this library was built against. False with `problem` when none loads or a
/// function is missing.
[[nodiscard]] bool load_cupti(const std::string& configured, cupti_api& api, std::string& problem);

} // namespace wlb::profiler
