#include "profiler/capture/inject/cuda/cupti_api.hpp"

#include <dlfcn.h>
#include <vector>

#ifndef WLB_CUPTI_BUILD_PATH
#define WLB_CUPTI_BUILD_PATH ""
#endif

namespace wlb::profiler {
namespace {

template <typename F>
bool resolve(void* handle, const char* name, F& out, std::string& missing) {
    out = reinterpret_cast<F>(::dlsym(handle, name));
    if (out == nullptr)
        missing += std::string(missing.empty() ? "" : ", ") + name;
    return out != nullptr;
}

std::string loaded_path(void* handle, void* symbol) {
    Dl_info info{};
    if (symbol != nullptr && ::dladdr(symbol, &info) != 0 && info.dli_fname != nullptr)
        return info.dli_fname;
    (void)handle;
    return "?";
}

} // namespace

std::string cupti_api::describe() const {
    return "CUPTI " + std::to_string(version / 10000) + "." + std::to_string(version / 100 % 100) +
           " (API " + std::to_string(version) + ") from " + path;
}

std::string cupti_api::result_text(CUptiResult r) const {
    const char* text = nullptr;
    if (get_result_string != nullptr)
        get_result_string(r, &text);
    return text != nullptr ? std::string(text) : "CUPTI result " + std::to_string(r);
}

bool load_cupti(const std::string& configured, cupti_api& api, std::string& problem) {
    const std::string soname = "libcupti.so." + std::to_string(CUPTI_API_VERSION / 10000);
    void* handle = ::dlopen(soname.c_str(), RTLD_NOW | RTLD_NOLOAD);
    std::vector<std::string> tried;
    for (const std::string& candidate : {configured, soname, std::string(WLB_CUPTI_BUILD_PATH)}) {
        if (handle != nullptr)
            break;
        if (candidate.empty())
            continue;
        handle = ::dlopen(candidate.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (handle == nullptr) {
            const char* why = ::dlerror();
            tried.push_back(candidate + " (" + (why ? why : "not found") + ")");
        }
    }
    if (handle == nullptr) {
        problem = "cannot load CUPTI: tried ";
        for (std::size_t i = 0; i < tried.size(); ++i)
            problem += (i ? "; " : "") + tried[i];
        problem += "; set WLBTUNE_CUPTI_LIBRARY (wlbtune profile --cupti)";
        return false;
    }
    cupti_api a;
    a.handle = handle;
    std::string missing;
    resolve(handle, "cuptiGetResultString", a.get_result_string, missing);
    resolve(handle, "cuptiGetVersion", a.get_version, missing);
    resolve(handle, "cuptiSubscribe", a.subscribe, missing);
    resolve(handle, "cuptiUnsubscribe", a.unsubscribe, missing);
    resolve(handle, "cuptiEnableCallback", a.enable_callback, missing);
    resolve(handle, "cuptiActivityRegisterCallbacks", a.register_callbacks, missing);
    resolve(handle, "cuptiActivityEnable", a.enable, missing);
    resolve(handle, "cuptiActivityDisable", a.disable, missing);
    resolve(handle, "cuptiActivityFlushAll", a.flush_all, missing);
    resolve(handle, "cuptiActivityGetNextRecord", a.next_record, missing);
    resolve(handle, "cuptiActivityGetNumDroppedRecords", a.dropped_records, missing);
    resolve(handle, "cuptiActivityPushExternalCorrelationId", a.push_external, missing);
    resolve(handle, "cuptiActivityPopExternalCorrelationId", a.pop_external, missing);
    a.subscribe_v2 =
        reinterpret_cast<decltype(a.subscribe_v2)>(::dlsym(handle, "cuptiSubscribe_v2"));
    a.path = loaded_path(handle, reinterpret_cast<void*>(a.get_version));
    if (!missing.empty()) {
        problem = a.path + " lacks " + missing;
        return false;
    }
    if (a.get_version(&a.version) != CUPTI_SUCCESS)
        a.version = 0;
    if (a.version / 10000 != CUPTI_API_VERSION / 10000) {
        problem = a.describe() + ": this library reads the record layouts of CUPTI " +
                  std::to_string(CUPTI_API_VERSION / 10000) + ".x";
        return false;
    }
    api = a;
    return true;
}

} // namespace wlb::profiler
