// An in-process fake of the communicator seam: the ranks of a job are threads of one process
// sharing a fake_world. It implements the whole contract of runtime/comm/communicator.hpp, the
// watchdog included, so unit tests exercise the parallel code paths without MPI.
//
// Semantics as MPI's: collectives rendezvous per group in call order; reductions sum the members'
// contributions in member order, so every member gets bitwise the same result; send is buffered.
// When any rank's watchdog fires (or a rank run by fake_world::run throws), the world is marked
// aborted and every thread waiting in it throws wlb::runtime_failure instead of hanging.
#pragma once

#include "runtime/comm/communicator.hpp"

#include <functional>
#include <memory>
#include <string>

namespace wlb::runtime {

class fake_world {
public:
    /// A world of `size` ranks whose operations time out after `watchdog_seconds`.
    explicit fake_world(int size, double watchdog_seconds = default_watchdog_seconds);
    ~fake_world();
    fake_world(const fake_world&) = delete;
    fake_world& operator=(const fake_world&) = delete;

    [[nodiscard]] int size() const noexcept { return m_size; }
    /// The world communicator of `rank` (group kind "world"); call once per rank.
    [[nodiscard]] std::unique_ptr<communicator> communicator_for(int rank);

    /// Whether a watchdog fired or a rank failed, and the first such message.
    [[nodiscard]] bool aborted() const;
    [[nodiscard]] std::string abort_message() const;

    /// Runs body(world communicator) on `size` threads, one per rank, and joins them. If any
    /// rank threw, throws: the first abort message as wlb::runtime_failure when the world was
    /// aborted by a watchdog, otherwise the first rank's exception (in rank order).
    static void run(int size, double watchdog_seconds,
                    const std::function<void(communicator&)>& body);

    struct state;

private:
    int m_size;
    std::shared_ptr<state> m_state;
};

} // namespace wlb::runtime
