"""The pipeline table: the pipeline's stages, in order, the one list that names them.

Settings (the seed overrides form), the flow, sweeps and comparisons all read
this table. It holds no stage code: settings must load without TensorFlow or
Prefect, so the code is bound by `@stage` (seedtrail/core/stage.py) on a run
function in the module named here, and found through `declared()` once that module
is imported (seedtrail/run/pipeline.py imports them all). The table never imports a
stage itself: the framework sits below the stages built on it (tests/test_layout.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from seedtrail.core.stage import DeclaredStage


@dataclass(frozen=True)
class StageSpec:
    name: str
    module: str  # where its @stage run function lives
    seed_description: str  # the "pin this seed" field of SeedOverrides (a Prefect UI form)
    # Its own seed changes the bytes of the run, so a sweep may vary it alone.
    seed_changes_bytes: bool = True
    # Its fingerprint describes the software stack, not data: compare reports it as a cause.
    describes_environment: bool = False


PIPELINE: tuple[StageSpec, ...] = (
    StageSpec(
        "environment",
        "tasks.environment",
        "Pin the environment seed.",
        seed_changes_bytes=False,
        describes_environment=True,
    ),
    StageSpec("data", "tasks.data", "Pin the data seed."),
    StageSpec("augment", "tasks.augment", "Pin the augment seed."),
    StageSpec("split", "tasks.split", "Pin the split seed."),
    StageSpec("model", "tasks.model", "Pin the model (weight init) seed."),
    StageSpec("train", "tasks.train", "Pin the train (batch order) seed."),
    # Predictions do not depend on its seed (it only reseeds the process defensively).
    StageSpec("evaluate", "tasks.evaluate", "Pin the evaluate seed.", seed_changes_bytes=False),
)

STAGES: tuple[str, ...] = tuple(s.name for s in PIPELINE)
#: Stages whose bytes are data (everything but the environment description).
DATA_STAGES: tuple[str, ...] = tuple(s.name for s in PIPELINE if not s.describes_environment)
#: Stages a sweep may vary alone (`--vary STAGE`).
VARY_STAGES: tuple[str, ...] = tuple(s.name for s in PIPELINE if s.seed_changes_bytes)

_declared: dict[str, DeclaredStage] = {}


def spec(name: str) -> StageSpec:
    return next(s for s in PIPELINE if s.name == name)


def register(stage: DeclaredStage) -> None:
    """Called by @stage. Two different functions may not claim one name."""
    old = _declared.get(stage.name)
    if old is not None and old.fn.__qualname__ != stage.fn.__qualname__:
        raise ValueError(f"stage {stage.name!r} is declared twice ({old.fn} and {stage.fn})")
    _declared[stage.name] = stage


def declared(name: str) -> DeclaredStage:
    """The declared stage of a pipeline name; its module must have been imported."""
    try:
        return _declared[name]
    except KeyError:
        raise LookupError(
            f"stage {name!r} is not declared yet: import {spec(name).module} first"
        ) from None
