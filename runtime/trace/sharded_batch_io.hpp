// A hand-written or replayed sharded batch on disk (schema "wlbtune.sharded_batch/1"), for
// `wlbtune simulate --batch FILE` until (and besides) the packers and sharders feed it:
//   {"schema": "wlbtune.sharded_batch/1",
//    "steps": [{"step": 0,
//               "replicas": [            // one per DP rank
//                 [                      // micro-batches of the replica
//                   [                    // CP ranks of the micro-batch
//                     [[doc_id, q_offset, q_tokens], ...]   // chunks of one CP rank
//                   , ...]
//                 , ...]
//               , ...]}]}
#pragma once

#include "runtime/parallel/batch.hpp"

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace wlb::runtime {

inline constexpr std::string_view sharded_batch_schema = "wlbtune.sharded_batch/1";

/// Reads and checks the file. Throws wlb::input_error naming the file and the JSON path
/// (e.g. "b.json: steps[0].replicas[1][2][0][3]: expected [doc_id, q_offset, q_tokens] with
/// q_offset >= 0 and q_tokens > 0").
std::vector<sharded_step> read_sharded_batch(const std::string& path);

/// The file's JSON for `steps`; `header` (an object, may be null: e.g. the report header) is
/// merged in.
nlohmann::json sharded_batch_json(const std::vector<sharded_step>& steps,
                                  const nlohmann::json* header = nullptr);

/// Writes `steps` to `path` atomically.
void write_sharded_batch(const std::string& path, const std::vector<sharded_step>& steps,
                         const nlohmann::json* header = nullptr);

} // namespace wlb::runtime
