// The probe micro-batches a calibration runs (runtime/calibrate/cpu_probe.hpp, gpu_probe.hpp):
// shapes that span what the cost model must tell apart. Attention work depends on more than the
// causal pairs (design.md "Work"): short documents, tile padding and chunks cut from long
// documents run at other rates per pair, so the probes vary one thing at a time:
//
//   documents of n      tokens / n whole documents of n tokens, n = min .. tokens in factors of 4
//   pieces of q         one document of `tokens` cut into chunks of q queries, each after every
//                       earlier piece (the shape per-document CP sharding gives a rank)
//   off-tile documents  documents of 100 (CPU) or 1,000 (GPU) tokens: lengths that are not a
//                       multiple of the kernel tile, so padding shows
//   mixes               one long document with many short ones in the same micro-batch (the
//                       document length mix inside a chunk)
//
// Every probe holds exactly `tokens` tokens, so the linear work (GEMMs, element-wise) of every
// probe is the same shape and its samples repeat.
#pragma once

#include "runtime/parallel/batch.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace wlb::runtime {

struct probe_batch {
    std::string label;         ///< "documents of 256 tokens", "pieces of 64 queries", ...
    micro_batch mb;            ///< documents (ids 0, 1, ...), drawn at step 0
    sharded_micro_batch shard; ///< one CP rank: the chunks its attention runs over
};

struct probe_design {
    std::int64_t tokens = 4096;     ///< per probe micro-batch
    std::int64_t min_document = 16; ///< the shortest documents probed
    std::int64_t off_tile = 100;    ///< a document length that is not a multiple of the tile
    /// Query tokens per piece of the cut document (each < tokens).
    std::vector<std::int64_t> pieces = {64, 512};
};

/// The CPU design (4K-token probes, documents of 16 .. 4096) and a smaller one for tests.
[[nodiscard]] probe_design cpu_probe_design(bool quick);
/// The GPU design (32K-token probes, documents of 128 .. 32K, pieces of 128 and 4096 queries).
[[nodiscard]] probe_design gpu_probe_design(bool quick);

/// The probes of `d`, in a fixed order. Every shard tiles its micro-batch's documents exactly
/// (runtime::validate_shard with cp = 1).
[[nodiscard]] std::vector<probe_batch> probe_batches(const probe_design& d);

} // namespace wlb::runtime
