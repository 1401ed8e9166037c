"""Configuration of a seedtrail run and the derivation of its seeds."""

from settings.model import (
    AugmentSettings,
    DataSettings,
    DeterminismSettings,
    ModelSettings,
    RunSettings,
    SeedOverrides,
    SplitSettings,
    TrainingSettings,
)
from settings.seeds import STAGES, SeedPlan, StageName, derive_seed, stage_key

__all__ = [
    "STAGES",
    "AugmentSettings",
    "DataSettings",
    "DeterminismSettings",
    "ModelSettings",
    "RunSettings",
    "SeedOverrides",
    "SeedPlan",
    "SplitSettings",
    "StageName",
    "TrainingSettings",
    "derive_seed",
    "stage_key",
]
