// The packing knobs as the command line takes them (a policy name, queues, thresholds, S_max as
// a multiple of the context, a window, micro-batches) and the packing config they describe.
#pragma once

#include "runtime/parallel/layout.hpp"
#include "tuner/packing/packer.hpp"

#include <cstdint>
#include <string>

namespace wlb::tuner {

/// The packing knobs as `wlbtune pack` and `wlbtune simulate` take them on the command line.
struct packing_knobs {
    std::string policy = "wlb";
    std::int64_t context_tokens = 131072;
    int queues = 2;         ///< wlb: default thresholds for this many queues
    std::string thresholds; ///< wlb: "24k,64k"; empty: default_thresholds(queues)
    std::string smax = "1.5x";
    int window = 1;
    int micro_batches = 0;      ///< per DP replica; 0: the layout's pp
    std::int64_t max_delay = 0; ///< wlb: the longest wait in steps (0: no bound)
};

/// The packing_config the knobs describe for `l` (replicas = dp), validated. Throws
/// wlb::input_error naming the option (--policy, --smax, --thresholds, ...).
packing_config make_packing_config(const packing_knobs& knobs, const runtime::layout& l);

} // namespace wlb::tuner
