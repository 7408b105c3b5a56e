// Times the operations of the device step (issue [cuda-run]) and reports them as op_records
// (runtime/trace/step_observer.hpp), so a GPU run's trace has the CPU run's operations, names,
// lanes and fields and every consumer reads both alike. The executor brackets each operation:
// begin(op) before queuing its work, end() after; the recorder marks the device stream at both
// points, so an operation's duration is DEVICE time (the kernels and copies it queued, and for
// communication the wait for its peers). At the step's end the marks are resolved into start
// times on one of two clocks:
//
//   device clock   real runs (one rank per process): the host's steady clock, anchored when
//                  the step starts (the device is idle then, after the run loop's barrier), plus
//                  the device time since; the ranks of one host share the clock.
//   virtual clock  emulated runs (runtime/comm/emulated_world.hpp): the rank's virtual clock.
//                  Work is laid back to back by its measured durations; a communication
//                  operation starts at the rank's arrival and ends when the emulated transfer
//                  set the clock (the latest member's arrival plus the transfer).
#pragma once

#include "runtime/comm/emulated_world.hpp"
#include "runtime/device/compute_device.hpp"
#include "runtime/trace/step_observer.hpp"

#include <memory>

namespace wlb::runtime {

class op_recorder {
public:
    op_recorder() = default;
    virtual ~op_recorder() = default;
    op_recorder(const op_recorder&) = delete;
    op_recorder& operator=(const op_recorder&) = delete;

    virtual void begin_step() = 0;
    /// Before the operation's work is queued; op.start_ns and dur_ns are filled in later.
    virtual void begin(const op_record& op) = 0;
    /// After its work is queued (a communication operation: after it completed in the stream's
    /// order).
    virtual void end() = 0;
    /// Resolves the step's times and reports every operation to `observer` (may be null) in
    /// program order.
    virtual void end_step(step_observer* observer) = 0;
};

[[nodiscard]] std::unique_ptr<op_recorder> make_device_clock_recorder(compute_device& device);
/// `clock` is the rank's clock in its emulated world; communication operations take their
/// times from it.
[[nodiscard]] std::unique_ptr<op_recorder> make_virtual_clock_recorder(compute_device& device,
                                                                       virtual_clock& clock);

} // namespace wlb::runtime
