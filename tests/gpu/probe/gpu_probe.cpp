// wlb_gpu_probe: what a GPU machine offers the GPU tests and benchmarks, one "name: value" line
// each, for scripts/gpu-check.sh (which prints it and keeps it in the machine description).
// Versions come from the libraries themselves (the ones this process loaded), and each shared
// library's path from the dynamic loader, so the report says which copy was used:
//
//   driver, runtime   cudaDriverGetVersion, cudaRuntimeGetVersion (cudart is linked static);
//                     when the driver library itself cannot be loaded, the loader's reason
//   device N          name, compute capability, memory, multiprocessors
//   cublas, cublasLt  cublasGetProperty, cublasLtGetVersion
//   cupti             cuptiGetVersion (the CUPTI API version)
//   nccl              ncclGetVersion
//   loaded            every libcuda / libcublas / libcupti / libnccl / libnvidia shared object
//
// Runs without a device (then says so); exits 0 unless a library call itself crashes.
#include <cstdio>
#include <cstring>
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cupti.h>
#include <dlfcn.h>
#include <link.h>
#include <nccl.h>
#include <string>
#include <vector>

namespace {

std::string cuda_version(int v) {
    if (v <= 0)
        return "none";
    return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10) + " (" +
           std::to_string(v) + ")";
}

int collect_loaded(dl_phdr_info* info, std::size_t, void* out) {
    const char* name = info->dlpi_name;
    if (name == nullptr || *name == '\0')
        return 0;
    for (const char* part : {"libcuda.", "libcublas", "libcupti", "libnccl", "libnvidia",
                             "libcudnn", "libnvrtc", "libnvJitLink"})
        if (std::strstr(name, part) != nullptr) {
            static_cast<std::vector<std::string>*>(out)->push_back(name);
            break;
        }
    return 0;
}

} // namespace

int main() {
    int driver = 0, runtime = 0;
    cudaDriverGetVersion(&driver);
    cudaRuntimeGetVersion(&runtime);
    std::printf("driver: %s\n", cuda_version(driver).c_str());
    if (void* libcuda = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL); libcuda != nullptr)
        dlclose(libcuda);
    else
        std::printf("driver library: not loadable (%s)\n", dlerror());
    std::printf("runtime: %s, linked static\n", cuda_version(runtime).c_str());
    int count = 0;
    const cudaError_t status = cudaGetDeviceCount(&count);
    if (status != cudaSuccess || count == 0) {
        std::printf("devices: none (%s)\n",
                    status != cudaSuccess ? cudaGetErrorString(status) : "0 devices");
        cudaGetLastError();
    }
    for (int i = 0; status == cudaSuccess && i < count; ++i) {
        cudaDeviceProp p{};
        if (cudaGetDeviceProperties(&p, i) != cudaSuccess)
            continue;
        std::printf("device %d: %s, sm_%d%d, %.1f GiB, %d multiprocessors\n", i, p.name, p.major,
                    p.minor, static_cast<double>(p.totalGlobalMem) / (1 << 30),
                    p.multiProcessorCount);
    }
    int major = 0, minor = 0, patch = 0;
    if (cublasGetProperty(MAJOR_VERSION, &major) == CUBLAS_STATUS_SUCCESS &&
        cublasGetProperty(MINOR_VERSION, &minor) == CUBLAS_STATUS_SUCCESS &&
        cublasGetProperty(PATCH_LEVEL, &patch) == CUBLAS_STATUS_SUCCESS)
        std::printf("cublas: %d.%d.%d\n", major, minor, patch);
    else
        std::printf("cublas: version query failed\n");
    std::printf("cublasLt: %zu\n", cublasLtGetVersion());
    std::uint32_t cupti = 0;
    if (cuptiGetVersion(&cupti) == CUPTI_SUCCESS)
        std::printf("cupti: API version %u\n", cupti);
    else
        std::printf("cupti: version query failed\n");
    int nccl = 0;
    if (ncclGetVersion(&nccl) == ncclSuccess)
        std::printf("nccl: %d.%d.%d (%d)\n", nccl >= 10000 ? nccl / 10000 : nccl / 1000,
                    nccl >= 10000 ? (nccl % 10000) / 100 : (nccl % 1000) / 100, nccl % 100,
                    nccl); // NCCL_VERSION's coding changed after 2.8
    else
        std::printf("nccl: version query failed\n");
    std::vector<std::string> loaded;
    dl_iterate_phdr(&collect_loaded, &loaded);
    for (const auto& path : loaded)
        std::printf("loaded: %s\n", path.c_str());
    return 0;
}
