// The sharder of a sharding spec: the one place that knows every CP sharding policy's
// implementation (per-seq, per-doc, adaptive, hybrid).
#pragma once

#include "tuner/cost/cost_model.hpp"
#include "tuner/sharding/sharding.hpp"

#include <memory>

namespace wlb::tuner {

/// The sharder for `spec`; keeps a reference to `cost`, which must outlive it.
std::unique_ptr<sharder> make_sharder(const sharding_spec& spec, const cost_model& cost);

} // namespace wlb::tuner
