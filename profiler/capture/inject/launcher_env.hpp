// Which rank a process is, read from its launcher's environment (design.md section 2, "profile"):
// the injection library names its trace file by this rank, and `wlbtune profile` checks the
// ranks it collected against it. Sources, the first one that gives a valid rank wins:
//
//   torchrun   RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE (TorchElastic; under srun or
//              mpirun, torchrun's workers also inherit the launcher's variables, which name the
//              agent's task, not the worker: so torchrun goes first)
//   openmpi    OMPI_COMM_WORLD_RANK, _SIZE, _LOCAL_RANK, _LOCAL_SIZE (mpirun of Open MPI)
//   pmix       PMIX_RANK (Open MPI 5, prrte, srun --mpi=pmix); PMIX_LOCAL_RANK when set
//   pmi        PMI_RANK, PMI_SIZE (MPICH/Hydra, Intel MPI, srun --mpi=pmi2); MPI_LOCALRANKID,
//              MPI_LOCALNRANKS (Hydra) or PMI_LOCAL_RANK for the local rank
//   slurm      SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID (srun without an MPI layer)
//   none       rank 0 of 1 (a single process)
//
// A source whose rank is set but malformed (not a number, negative, not below its size) is
// skipped with a warning that names the variable and its value. Host code, no CUDA.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace wlb::profiler {

/// Looks a variable up: its value, or nullptr when it is not set.
using env_lookup = std::function<const char*(const char* name)>;
/// The process's own environment (getenv).
[[nodiscard]] env_lookup process_environment();

struct launcher_identity {
    int rank = 0;
    int world_size = 1;                ///< 0: the launcher did not say
    int local_rank = 0;                ///< rank on this node; -1: the launcher did not say
    int local_world_size = 0;          ///< 0: the launcher did not say
    std::string launcher = "none";     ///< "torchrun", "openmpi", "pmix", "pmi", "slurm", "none"
    std::vector<std::string> warnings; ///< malformed variables that were skipped
};

[[nodiscard]] launcher_identity identify_launcher(const env_lookup& env);

} // namespace wlb::profiler
