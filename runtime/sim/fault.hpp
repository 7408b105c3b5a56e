// Fault injection for the simulator (tests and what-if studies): the stragglers of design.md
// section 1, each with a factor > 0 that multiplies the affected durations.
//
//   slow-rank=R:F          every compute duration of global rank R (its whole TP group runs at
//                          its pace: TP peers meet in a collective every layer)
//   slow-link=A-B:F        every transfer or collective carrying traffic between ranks A and B
//                          (same TP group: its TP collectives; same CP or DP x CP group: those
//                          collectives; pipeline neighbours: their point-to-point transfers)
//   heavy-mb=M:F           the compute of micro-batch M in every DP replica
//   heavy-mb=M@D:F         ... only in DP replica D
//   slow-stage=S:F         every compute duration of pipeline stage (pp rank) S
#pragma once

#include "runtime/parallel/layout.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace wlb::runtime {

struct fault {
    enum class kind { slow_rank, slow_link, heavy_micro_batch, slow_stage };
    kind what = kind::slow_rank;
    int rank = -1;        ///< slow_rank; slow_link: one end
    int other_rank = -1;  ///< slow_link: the other end
    int micro_batch = -1; ///< heavy_micro_batch
    int replica = -1;     ///< heavy_micro_batch: -1 every DP replica
    int stage = -1;       ///< slow_stage
    double factor = 1.0;
    [[nodiscard]] std::string describe() const; ///< the spec it parses from
};

/// Parses one spec (see above). Throws wlb::input_error quoting the spec, the part that is
/// wrong and the expected form.
fault parse_fault(std::string_view spec);

/// Checks ranks, stages and replicas against the layout (and a slow link's two ranks against
/// the traffic between them). Throws wlb::input_error naming the spec.
void validate_fault(const fault& f, const layout& l);

} // namespace wlb::runtime
