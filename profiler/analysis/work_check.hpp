// Does the lost time follow the work the batches predict? Where a trace records its steps'
// packed and sharded batches (wlbtune's own runs and simulations, trace_meta::batches), each
// attributed step is checked against them:
//
//   cells      one per (replica, micro-batch, CP rank): its work from the batch (tokens; causal
//              attention pairs of its chunks) and its measured compute (linear + attention over
//              every stage, model chunk and pass);
//   fit        per (stage, model chunk, pass) column, over the step's cells: seconds per token for
//              the linear part (a ratio of sums); for the attention part seconds per pair plus
//              seconds per query token (least squares, both >= 0; kernels run short documents at
//              a lower rate), or per pair alone where the column has fewer than 3 cells or the
//              fit fails. The step's hardware speed and each stage's layer count are absorbed;
//   predicted  the step with every slot's compute replaced by its fitted work, replayed on the
//              simulator: the seconds PP packing, CP sharding and DP imbalance cost when the time
//              comes from the batch contents alone (simulated, like every what-if figure).
//
// Agreement means the imbalance is in the data: the packer and sharder decide it, `wlbtune tune`
// can remove it. A slow worker and communication are not in the batches; they show as measured
// time the prediction lacks.
#pragma once

#include "profiler/analysis/attribution.hpp"
#include "profiler/analysis/batch_work.hpp"
#include "profiler/analysis/measured_step.hpp"
#include "runtime/parallel/batch.hpp"

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace wlb::profiler {

/// The causes that batch contents decide.
inline constexpr std::array<cause, 3> batch_causes = {cause::pp_packing, cause::cp_sharding,
                                                      cause::dp_imbalance};

struct work_cell {
    std::int64_t step = 0;
    int replica = 0;
    int micro_batch = 0;
    int cp_rank = 0;
    std::int64_t tokens = 0;
    std::int64_t attention_pairs = 0;
    double measured_s = 0.0;  ///< compute over stages, chunks and passes (measured)
    double predicted_s = 0.0; ///< the same from the fitted work
};

struct work_check {
    bool available = false;
    std::string reason;               ///< why there is no check, when not available
    int steps = 0;                    ///< steps checked
    std::vector<std::string> skipped; ///< "step 3: ..." for attributed steps not checked
    std::vector<work_cell> cells;
    /// Pearson correlation of predicted and measured compute over the cells; none when either is
    /// constant (nothing to follow).
    std::optional<double> correlation;
    /// (step, replica) pairs whose predicted heaviest micro-batch stands out (by more than the
    /// noise threshold over the next), and how many of them the measurement also makes heaviest.
    int heaviest_micro_batch_groups = 0;
    int heaviest_micro_batch_agree = 0;
    /// The same for CP ranks within a micro-batch.
    int heaviest_cp_rank_groups = 0;
    int heaviest_cp_rank_agree = 0;
    /// Per cause, summed over the checked steps: lost seconds from the measured durations (the
    /// attribution's) and from the predicted ones (batch causes only).
    std::array<double, cause_count> measured_lost_s{};
    std::array<double, cause_count> predicted_lost_s{};
};

/// Collects the check step by step (attribution_options::observe), then finish().
class work_checker {
public:
    /// `noise`: relative differences below it do not make a heaviest micro-batch or CP rank.
    work_checker(const std::vector<runtime::sharded_step>& batches, double noise = 0.02);
    void add(const measured_step& m, const step_attribution& a);
    [[nodiscard]] work_check finish() &&;

private:
    std::map<std::int64_t, const runtime::sharded_step*> m_batches;
    double m_noise;
    work_check m_out;
};

} // namespace wlb::profiler
