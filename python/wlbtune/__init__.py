"""wlbtune's packers, CP sharders and cost model inside a training job's dataloader.

The extension wlbtune._wlbtune holds everything (bindings of the C++ library, the same code
`wlbtune pack` and `wlbtune shard` run); this package re-exports it. See docs/integration.md.
"""

from ._wlbtune import (
    CostModel,
    MicroBatch,
    Packer,
    PackingConfig,
    Plan,
    RankShard,
    Sharder,
    Sharding,
    ShardingSpec,
    ShardMeasures,
    Step,
    StepMeasures,
    TunedConfig,
    __version__,
    causal_pairs,
    hardware_presets,
    load_config,
    model_presets,
    packing_policies,
    read_plan,
    sharding_policies,
)

__all__ = [
    "CostModel",
    "MicroBatch",
    "Packer",
    "PackingConfig",
    "Plan",
    "RankShard",
    "Sharder",
    "Sharding",
    "ShardingSpec",
    "ShardMeasures",
    "Step",
    "StepMeasures",
    "TunedConfig",
    "__version__",
    "causal_pairs",
    "hardware_presets",
    "load_config",
    "model_presets",
    "packing_policies",
    "read_plan",
    "sharding_policies",
]
