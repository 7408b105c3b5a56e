// The world communicator of a build without MPI (WLB_MPI=OFF or MPI not found): one rank, the
// in-process implementation. A job started by a launcher with more rank than one is refused.
#include "base/error.hpp"
#include "runtime/comm/communicator.hpp"
#include "runtime/comm/fake_communicator.hpp"

namespace wlb::runtime {

std::unique_ptr<communicator> make_world_communicator(const world_options& options) {
    const launch_info launch = detect_launch();
    if (launch.size > 1)
        throw runtime_failure(fmt::format(
            "this wlbtune was built without MPI but was started as rank {} of {} by {}; rebuild "
            "with MPI (scripts/install-deps.sh, then configure with -DWLB_MPI=ON) or run one "
            "process",
            launch.rank, launch.size, launch.launcher));
    // The world outlives its one communicator: the communicator shares the world's state.
    fake_world world(1, options.watchdog_seconds);
    return world.communicator_for(0);
}

bool world_communicator_has_mpi() noexcept {
    return false;
}

} // namespace wlb::runtime
