// Starts the MPI probe program (tests/mpi/mpi_probe.cpp) under mpirun and captures its exit code
// and output, for the integration tests of the MPI side of the communicator seam.
#pragma once

#include "support/cli_runner.hpp"

#include <gtest/gtest.h>
#include <string>

namespace wlb::test {

/// Exit code of `timeout` when it had to kill a hung job.
inline constexpr int hang_exit_code = 124;

#ifdef WLB_MPI_PROBE_EXE
#define WLB_SKIP_WITHOUT_MPI() (void)0
/// mpirun --oversubscribe -np N EXE ARGS, killed after `timeout_seconds` (exit 124) if it hangs.
inline cli_result run_mpi_exe(const std::string& exe, int ranks, const std::string& args,
                              int timeout_seconds = 60) {
    temp_dir dir;
    const auto out = dir / "stdout";
    const auto err = dir / "stderr";
    const std::string cmd = "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "
                            "OMPI_MCA_rmaps_base_oversubscribe=1 timeout " +
                            std::to_string(timeout_seconds) +
                            " '" WLB_MPIEXEC "' --oversubscribe -np " + std::to_string(ranks) +
                            " '" + exe + "' " + args + " >'" + out.string() + "' 2>'" +
                            err.string() + "' </dev/null";
    const int status = std::system(cmd.c_str());
    cli_result r;
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.out = read_text(out);
    r.err = read_text(err);
    return r;
}
/// mpirun --oversubscribe -np N wlb_mpi_probe ARGS, killed after 60 s (exit 124) if it hangs.
inline cli_result run_mpi(int ranks, const std::string& args) {
    return run_mpi_exe(WLB_MPI_PROBE_EXE, ranks, args);
}
/// mpirun --oversubscribe -np N wlbtune ARGS, killed after 120 s (exit 124) if it hangs.
inline cli_result run_mpi_wlbtune(int ranks, const std::string& args) {
    return run_mpi_exe(WLBTUNE_EXE, ranks, args, 120);
}
#else
#define WLB_SKIP_WITHOUT_MPI() GTEST_SKIP() << "built without MPI (WLB_MPI=OFF or MPI not found)"
inline cli_result run_mpi(int, const std::string&) {
    return {};
}
inline cli_result run_mpi_wlbtune(int, const std::string&) {
    return {};
}
#endif

} // namespace wlb::test
