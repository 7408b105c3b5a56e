#include "base/host_memory.hpp"

#include <cstdlib> // defines __GLIBC__ on glibc
#include <unistd.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace wlb {

bool retain_freed_memory() noexcept {
#if defined(__GLIBC__)
    // Serve blocks up to 32 MiB (glibc's ceiling for this knob on 64-bit) from the heap instead of
    // private mmaps, and never trim the heap top.
    const bool mmap_ok = mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024) == 1;
    const bool trim_ok = mallopt(M_TRIM_THRESHOLD, -1) == 1;
    return mmap_ok && trim_ok;
#else
    return false;
#endif
}

std::uint64_t host_physical_bytes() noexcept {
    const long pages = ::sysconf(_SC_PHYS_PAGES);
    const long page_bytes = ::sysconf(_SC_PAGE_SIZE);
    if (pages <= 0 || page_bytes <= 0)
        return 0;
    return static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page_bytes);
}

} // namespace wlb
