// The job's layout, read from its command lines when `wlbtune profile` is not told it
// (--layout): Megatron-LM's flags (--tensor-model-parallel-size, --pipeline-model-parallel-size,
// --context-parallel-size, --virtual-pipeline-model-parallel-size or
// --num-layers-per-virtual-pipeline-stage with --num-layers, --use-tp-pp-dp-mapping) and
// TorchTitan's (--parallelism.tensor_parallel_degree, .pipeline_parallel_degree,
// .context_parallel_degree), "--flag N" or "--flag=N". DP is what the world leaves. The axis
// order is both frameworks' default, TP innermost and PP outermost ("tp-cp-dp-pp"), or
// "tp-cp-pp-dp" under Megatron's --use-tp-pp-dp-mapping. Host code.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace wlb::profiler {

struct job_layout_guess {
    std::string spec;  ///< "tp=2,cp=1,pp=2,dp=2[,vpp=2]"
    std::string order; ///< "tp-cp-dp-pp"
    std::string from;  ///< "Megatron-LM flags", "TorchTitan flags"
};

/// The layout the flags on `commands` (whole argv lists, any of them) give for `world` ranks;
/// nullopt when none of the flags is there. `problem` says why flags that are there do not fit
/// (the world is not a multiple of tp x cp x pp, a value is not a number).
[[nodiscard]] std::optional<job_layout_guess>
layout_from_commands(const std::vector<std::vector<std::string>>& commands, int world,
                     std::string& problem);

} // namespace wlb::profiler
