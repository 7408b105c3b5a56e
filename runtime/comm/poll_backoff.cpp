#include "runtime/comm/poll_backoff.hpp"

#include <chrono>
#include <sched.h>
#include <thread>

namespace wlb::runtime {

void poll_backoff(int polls) {
    if (polls < 64)
        return;
    if (polls < 2048) {
        sched_yield();
        return;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
}

} // namespace wlb::runtime
