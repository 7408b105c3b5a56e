// A stand-in for a CUDA process that libwlbtune_inject.so is loaded into, for the CPU-only checks
// of tests/integration/test_inject_library.cpp: it makes NVTX calls (the NVTX library loads the
// library named by NVTX_INJECTION64_PATH and calls its InitializeInjectionNvtx2; a domain of its
// own, a registered string), then loads the library and calls InitializeInjection as the CUDA
// driver does at cuInit, makes one more NVTX range and exits normally (the library writes its
// files at exit).
//
//   wlb_inject_host LIBRARY [MS]     MS: sleep this long before exiting (then a signal can come)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <dlfcn.h>
#include <nvtx3/nvToolsExt.h>
#include <thread>

int main(int argc, char** argv) {
    if (argc != 2 && argc != 3) {
        std::fprintf(stderr, "usage: wlb_inject_host LIBRARY [MS]\n");
        return 2;
    }
    nvtxRangePushA("train_step");
    nvtxRangePushA("forward");
    nvtxRangePushA("aten::mm, seq = 1");
    nvtxRangePop();
    nvtxRangePop();
    // A domain of the job's own, and a name given as a registered string.
    const nvtxDomainHandle_t domain = nvtxDomainCreateA("job");
    nvtxEventAttributes_t a{};
    a.version = NVTX_VERSION;
    a.size = NVTX_EVENT_ATTRIB_STRUCT_SIZE;
    a.messageType = NVTX_MESSAGE_TYPE_REGISTERED;
    a.message.registered = nvtxDomainRegisterStringA(domain, "backward");
    nvtxDomainRangePushEx(domain, &a);
    nvtxDomainRangePop(domain);
    nvtxRangePop();
    void* lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
        std::fprintf(stderr, "inject_host: %s\n", dlerror());
        return 3;
    }
    using init_fn = int (*)();
    auto init = reinterpret_cast<init_fn>(dlsym(lib, "InitializeInjection"));
    if (init == nullptr) {
        std::fprintf(stderr, "inject_host: no InitializeInjection\n");
        return 4;
    }
    std::printf("InitializeInjection returned %d\n", init());
    std::fflush(stdout);
    nvtxRangePushA("train_step"); // recorded only while capture is on
    nvtxRangePop();
    if (argc == 3)
        std::this_thread::sleep_for(std::chrono::milliseconds(std::atoi(argv[2])));
    return 0;
}
