// The work of a step's packed and sharded batch, cell by cell, and the step the trace would show
// if every slot's compute followed that work: what the work check
// (profiler/analysis/work_check.hpp) and the attribution's per-token comparisons of workers share.
#pragma once

#include "profiler/analysis/measured_step.hpp"
#include "runtime/parallel/batch.hpp"

#include <string>
#include <vector>

namespace wlb::profiler {

/// Work of one (replica, micro-batch, CP rank) cell of a batch.
struct cell_work {
    double tokens = 0.0;
    double pairs = 0.0; ///< causal attention pairs of its chunks
};
/// [replica][micro-batch][CP rank].
using batch_work = std::vector<std::vector<std::vector<cell_work>>>;
batch_work work_of(const runtime::sharded_step& batch);

/// Empty when `batch` has m's shape (replicas, micro-batches per replica, CP ranks); otherwise
/// what differs ("replica 1 has 3 micro-batches in the batch, 4 in the trace").
std::string shape_mismatch(const measured_step& m, const runtime::sharded_step& batch);

/// `m` with every present slot's linear and attention seconds replaced by the work of `batch`
/// fitted per (stage, model chunk, pass) column as profiler/analysis/work_check.hpp
/// describes. Wants a source that splits
/// attention from linear work (wlbtune's traces do; they are the ones that record batches). `batch`
/// must have m's shape (replicas, micro-batches per replica, CP ranks): checked,
/// wlb::internal_error.
measured_step predicted_step(const measured_step& m, const runtime::sharded_step& batch);
/// The same from the batch's work (work_of), its shape already checked.
measured_step predicted_step(const measured_step& m, const batch_work& work);

} // namespace wlb::profiler
