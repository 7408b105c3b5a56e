// Host memory policy for the real executors. A training step allocates and frees activation
// buffers of many megabytes; with glibc's defaults those come from fresh mmap'd pages and go back
// to the kernel on free, so every step pays a page fault per 4 KiB touched (expensive on VMs:
// a third of a CPU decoder step on the dev VM). retain_freed_memory() makes freed memory stay in
// the process for reuse. Call it once at startup, before the threads start; a no-op where the C
// library has no such knob.
#pragma once

#include <cstdint>

namespace wlb {

/// Returns true when the allocator was reconfigured.
bool retain_freed_memory() noexcept;

/// This host's physical memory in bytes (0 when the system does not say). Callers check an
/// allocation a user's input asks for against it before making it.
std::uint64_t host_physical_bytes() noexcept;

} // namespace wlb
