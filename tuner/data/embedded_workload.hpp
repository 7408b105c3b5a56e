// The embedded default workload: 32,768 document lengths sampled from WLB-LLM's long-context
// distribution and compiled into the program, so that every command has a realistic dataset on
// a machine with nothing but wlbtune. Source: the public repository hao-ai-lab/distca, file
// distca/simulator/data/dist_wlbllm.json (99,519 lengths labelled the WLB-LLM distribution),
// sampled without replacement with a fixed seed by scripts/gen_embedded_workload.py, keeping the
// file's order. docs/data.md has the details and the sample's statistics.
#pragma once

#include <cstdint>
#include <span>

namespace wlb::tuner {

/// The lengths in tokens, in the order of the source file.
std::span<const std::int32_t> embedded_workload_lengths() noexcept;

/// Where they came from, one line (for describe() and reports).
inline constexpr const char* embedded_workload_origin =
    "32768 lengths sampled (seed 20250325) from hao-ai-lab/distca "
    "distca/simulator/data/dist_wlbllm.json";

} // namespace wlb::tuner
