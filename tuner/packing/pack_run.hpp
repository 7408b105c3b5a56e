// Runs a packer over a document stream for a number of steps, measuring every step and handing
// each to a sink (a plan_writer, a test). The one loop the CLI, the benchmark and the tests share.
#pragma once

#include "runtime/parallel/batch.hpp"
#include "tuner/packing/packer.hpp"
#include "tuner/packing/packing_measures.hpp"

#include <cstdint>
#include <functional>
#include <string>

namespace wlb::tuner {

class cost_model;
class document_stream;

using step_sink = std::function<void(const runtime::global_batch&)>;

/// Packs steps 0, 1, 2, ... until `max_steps` steps were emitted (0: until the packer returns
/// nullopt, i.e. the stream ended and nothing waits), measuring each (packing time = wall clock
/// of packer::pack). Calls `sink` with every step, then measures.finish(p.waiting()).
void run_packing(packer& p, const document_pull& pull, std::int64_t max_steps,
                 run_measures& measures, const step_sink& sink = {});

/// One policy's run over a stream: its configuration and its measures.
struct pack_result {
    std::string name; ///< "wlb", "fixed-greedy W=4", ...
    packing_config config;
    run_summary summary;
    std::vector<step_measures> steps;
};

/// Rewinds `stream`, packs it with `config` for `max_steps` steps (0: to its end) and measures
/// the run; every step goes to `sink`, and the documents still waiting are returned in
/// `waiting` when it is not null.
pack_result pack_stream(document_stream& stream, const packing_config& config,
                        const cost_model& costs, std::int64_t max_steps, const step_sink& sink = {},
                        std::vector<runtime::document>* waiting = nullptr);

/// "wlb (2 queues: 24k,64k; S_max 192k)", "fixed-greedy (W=4)": a policy and its parameters.
std::string describe(const packing_config& config);

} // namespace wlb::tuner
