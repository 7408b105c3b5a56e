// What the Python objects hold: a packed step flattened into contiguous arrays (so that every
// array a Step or MicroBatch hands out is a view of it), and a micro-batch's CP sharding with each
// rank's varlen kernel shapes. Conversions only: the steps and shardings come from the library.
#pragma once

#include "runtime/parallel/batch.hpp"
#include "tuner/sharding/sharding.hpp"
#include "tuner/sharding/varlen_shapes.hpp"

#include <cstdint>
#include <memory>
#include <vector>

namespace wlb::python {

/// One step: micro-batch k (replica k / micro_batches, index k % micro_batches) holds documents
/// [offsets[k], offsets[k + 1]) of ids, tokens and drawn_steps.
struct packed_step {
    std::int64_t step = 0;
    int replicas = 0;
    int micro_batches = 0; ///< per replica
    std::vector<std::int64_t> ids;
    std::vector<std::int64_t> tokens;
    std::vector<std::int64_t> drawn_steps;
    std::vector<std::int64_t> offsets; ///< replicas x micro_batches + 1, from 0

    /// Throws wlb::input_error when replicas differ in micro-batch count.
    static std::shared_ptr<packed_step> from(const runtime::global_batch& b);
    [[nodiscard]] runtime::global_batch batch() const;
    /// Micro-batch `k` in flat order (k = replica x micro_batches + index).
    [[nodiscard]] runtime::micro_batch micro_batch(std::size_t k) const;
    [[nodiscard]] std::size_t micro_batch_count() const noexcept { return offsets.size() - 1; }
};

/// One micro-batch of a packed step.
struct micro_batch_ref {
    std::shared_ptr<const packed_step> step;
    std::size_t k = 0; ///< flat index
    [[nodiscard]] std::int64_t begin() const { return step->offsets[k]; }
    [[nodiscard]] std::int64_t size() const { return step->offsets[k + 1] - step->offsets[k]; }
};

/// A micro-batch's CP sharding and each rank's kernel shapes.
struct cp_sharding {
    tuner::shard_decision decision;
    std::vector<tuner::varlen_shapes> shapes; ///< index = CP rank

    static std::shared_ptr<cp_sharding> from(tuner::shard_decision d);
};

/// One CP rank of a sharding.
struct rank_shard_ref {
    std::shared_ptr<const cp_sharding> sharding;
    std::size_t rank = 0;
    [[nodiscard]] const std::vector<runtime::chunk>& chunks() const {
        return sharding->decision.sharded.ranks[rank].chunks;
    }
    [[nodiscard]] const tuner::varlen_shapes& shapes() const { return sharding->shapes[rank]; }
};

} // namespace wlb::python
