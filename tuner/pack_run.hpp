// Runs a packer over a document stream for a number of steps, measuring every step and handing
// each to a sink (a plan_writer, a test). The one loop the CLI, the benchmark and the tests share.
#pragma once

#include "runtime/batch.hpp"
#include "tuner/packer.hpp"
#include "tuner/packing_measures.hpp"

#include <cstdint>
#include <functional>

namespace wlb::tuner {

using step_sink = std::function<void(const runtime::global_batch&)>;

/// Packs steps 0, 1, 2, ... until `max_steps` steps were emitted (0: until the packer returns
/// nullopt, i.e. the stream ended and nothing waits), measuring each (packing time = wall clock
/// of packer::pack). Calls `sink` with every step, then measures.finish(p.waiting()).
void run_packing(packer& p, const document_pull& pull, std::int64_t max_steps,
                 run_measures& measures, const step_sink& sink = {});

} // namespace wlb::tuner
