// The extension module wlbtune._wlbtune (issue 21; docs/integration.md): the packers, the CP
// sharders, the cost model, tuned configs and plan files of the library, for a training job's
// Python dataloader. Bindings only, no logic of their own (design.md section 3): every decision
// is the library's, so the module packs and shards exactly as `wlbtune pack` and `wlbtune shard`
// do, and its errors carry the library's messages.
//
//   bind_settings.cpp  PackingConfig, ShardingSpec, CostModel, TunedConfig, the measures
//   bind_packing.cpp   Packer (tuner::online_packer), Step, MicroBatch
//   bind_sharding.cpp  Sharder, Sharding, RankShard (tuner::varlen_shapes)
//   bind_plan.cpp      read_plan, Plan
//   module.cpp         the module, and wlb::error -> ValueError (bad input) / RuntimeError
//
// The GIL is released while the library packs, shards or reads a file; each Packer and Sharder
// holds a mutex, so two Python threads may share one.
#pragma once

#include <pybind11/pybind11.h>

namespace wlb::python {

void bind_settings(pybind11::module_& m);
void bind_packing(pybind11::module_& m);
void bind_sharding(pybind11::module_& m);
void bind_plan(pybind11::module_& m);

} // namespace wlb::python
